"""Identity similarity: dlib on the real clips (same person scores above different people), ArcFace's loader,
preprocessing and alignment with a small ONNX model in the official interface, and the metric's bookkeeping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vlogger.evaluation.identity import (
    ARCFACE_TEMPLATE,
    CSIM,
    ArcFaceBackbone,
    IdentityDlib,
    IdentitySimilarity,
    face_mesh_points,
    make_backbone,
    similarity_transform,
)

FRAMES_PER_CLIP = 4


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def noise_frame(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def dlib_backbone():
    pytest.importorskip("dlib", reason="dlib backbone needs `pip install dlib-bin face-recognition-models`")
    return make_backbone("dlib")


@pytest.fixture(scope="module")
def clip_frames(clips_dir: Path) -> dict[str, np.ndarray]:
    """Four frames spread over each of the nine real clips (one person per clip, nine different people), at the
    evaluation protocol's tracking size."""
    from vlogger.core.video import probe, read_frames, scaled_size

    out = {}
    for path in sorted(clips_dir.glob("*.mp4")):
        info = probe(path)
        idx = np.linspace(0, info.n_frames - 1, FRAMES_PER_CLIP + 2)[1:-1].round().astype(int)
        out[path.stem] = np.stack(list(read_frames(info, idx, scaled_size(info.width, info.height, 640))))
    return out


def summary(x: np.ndarray) -> str:
    return f"n={len(x)} mean={x.mean():.3f} min={x.min():.3f} max={x.max():.3f}"


@pytest.mark.shared
def test_dlib_same_person_scores_above_different_people(dlib_backbone, clip_frames) -> None:
    names = list(clip_frames)
    emb = np.concatenate([dlib_backbone.embed(clip_frames[n]) for n in names])
    assert emb.shape == (len(names) * FRAMES_PER_CLIP, 128)
    assert not np.isnan(emb).any(), "dlib found no face in some clip frame"
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    person = np.repeat(np.arange(len(names)), FRAMES_PER_CLIP)
    i, j = np.triu_indices(len(emb), 1)
    cos = np.einsum("nd,nd->n", emb[i], emb[j])
    same, diff = cos[person[i] == person[j]], cos[person[i] != person[j]]
    hardest = np.argmax(np.where(person[i] != person[j], cos, -1))
    print(f"\ndlib same person: {summary(same)}\ndlib different people: {summary(diff)}")
    print(
        f"separation min(same) - max(diff) = {same.min() - diff.max():.3f}; closest different pair: "
        f"{names[person[i[hardest]]]} / {names[person[j[hardest]]]}"
    )
    assert same.min() > diff.max()
    assert same.mean() - diff.mean() > 0.1


@pytest.mark.shared
def test_metric_counts_faceless_frames_without_changing_the_mean(dlib_backbone, clip_frames) -> None:
    frames = clip_frames["hdtf_WDA_KatieHill_000"]
    ref, rest = frames[0], frames[1:]
    clean, noisy = IdentityDlib(dlib_backbone), IdentityDlib(dlib_backbone)
    clean.update(clean.similarity(ref, rest))
    measured = noisy.similarity(ref, np.concatenate([rest, noise_frame((1, *rest.shape[1:]))]))
    noisy.update(measured)
    a, b = clean.compute(), noisy.compute()
    assert (int(clean.no_face_frames), int(noisy.no_face_frames)) == (0, 1)
    assert a["identity_dlib"] == pytest.approx(b["identity_dlib"]) == pytest.approx(measured.row["identity_dlib"])
    assert a["identity_dlib"] > 0.9


def test_faceless_reference_leaves_the_video_unscored(dlib_backbone) -> None:
    metric = IdentityDlib(dlib_backbone)
    measured = metric.similarity(noise_frame((256, 256, 3)), noise_frame((2, 256, 256, 3)))
    metric.update(measured)
    assert measured.row == {"identity_dlib_skipped": "dlib found no face in the reference image"}
    assert (int(metric.no_face_references), int(metric.no_face_frames)) == (1, 0)
    with pytest.raises(ValueError, match=r"no video could be scored \(no_face_frames 0, no_face_references 1\)"):
        metric.compute()


@pytest.mark.shared
def test_video_without_a_face_says_why_it_has_no_score(dlib_backbone, clip_frames) -> None:
    metric = IdentityDlib(dlib_backbone)
    measured = metric.similarity(clip_frames["hdtf_WDA_KatieHill_000"][0], noise_frame((2, 256, 256, 3)))
    assert measured.row == {"identity_dlib_skipped": "dlib found no face in any of 2 frames"}
    measured = metric.similarity(clip_frames["hdtf_WDA_KatieHill_000"][0], clip_frames["hdtf_WDA_KatieHill_000"][1:3])
    assert measured.row["identity_dlib"] > 0.9


class _Fixed:
    """A backbone that returns preset rows, to check bookkeeping without a face model."""

    dim = 2

    def __init__(self, name: str) -> None:
        self.name = name

    def embed(self, frames_rgb: np.ndarray) -> np.ndarray:
        return np.tile([1.0, 0.0], (len(frames_rgb), 1))


def test_scores_of_different_backbones_are_never_merged() -> None:
    a, b = IdentitySimilarity(_Fixed("dlib")), IdentitySimilarity(_Fixed("arcface"))
    with pytest.raises(ValueError, match="backbone"):
        a.merge_state(b)


def write_arcface_like_onnx(path: Path, batch: int | str = "None") -> Path:
    """An ONNX model with the official interface ("input.1": N x 3 x 112 x 112 float -> N x 512) whose first three
    outputs are the per-channel means of its input, so tests can read back the preprocessing."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = np.zeros((3, 512), np.float32)
    weight[:, :3] = np.eye(3)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weight"], ["683"]),
        ],
        "arcface_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [batch, 512])],
        [numpy_helper.from_array(weight, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def arcface_like(tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    return write_arcface_like_onnx(tmp_path_factory.mktemp("arcface") / "w600k_r50.onnx")


@pytest.mark.parametrize("batch", ["None", 1])
def test_arcface_feeds_rgb_scaled_to_minus_one_one(tmp_path: Path, batch: int | str) -> None:
    pytest.importorskip("onnxruntime")
    backbone = ArcFaceBackbone(write_arcface_like_onnx(tmp_path / "m.onnx", batch))
    crops = np.zeros((3, 112, 112, 3), np.uint8)
    crops[:] = [255, 0, 64]
    emb = backbone.embed_aligned(crops)
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    expected = np.array([255, 0, 64]) - 127.5
    np.testing.assert_allclose(emb[:, :3], np.tile(expected / np.linalg.norm(expected), (3, 1)), atol=1e-5)


def test_arcface_embeds_faces_and_marks_frames_without_one(arcface_like: Path, shared_dir: Path) -> None:
    img = read_rgb(shared_dir / "data" / "images" / "portrait_hallo6.jpg")
    emb = ArcFaceBackbone(arcface_like).embed(np.stack([img, noise_frame(img.shape)]))
    assert emb.shape == (2, 512)
    assert np.linalg.norm(emb[0]) == pytest.approx(1, abs=1e-5)
    assert np.isnan(emb[1]).all()


def test_make_backbone_resolves_arcface_weights_through_the_zoo(arcface_like: Path, monkeypatch) -> None:
    from vlogger.evaluation import identity

    asked = []
    monkeypatch.setattr(identity, "resolve", lambda name: asked.append(name) or arcface_like)
    assert make_backbone("arcface").dim == 512
    assert asked == ["arcface_w600k_r50"]


def test_missing_arcface_weights_name_the_fetch_command(tmp_path: Path, monkeypatch) -> None:
    zoo = pytest.importorskip("vlogger.zoo")
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))
    with pytest.raises(zoo.MissingWeights, match="vlogger zoo fetch arcface_w600k_r50"):
        make_backbone("arcface")


def test_five_point_alignment_maps_a_real_face_onto_the_template(shared_dir: Path) -> None:
    pytest.importorskip("mediapipe")
    img = read_rgb(shared_dir / "data" / "images" / "portrait_hallo6.jpg")
    points = face_mesh_points(img[None])[0]
    m = similarity_transform(points, ARCFACE_TEMPLATE)
    err = np.linalg.norm(points @ m[:, :2].T + m[:, 2] - ARCFACE_TEMPLATE, axis=1)
    assert err.max() < 5 and err.mean() < 3, err


def test_similarity_transform_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, (5, 2))
    angle, scale, shift = 0.3, 0.4, np.array([12.0, -7.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(similarity_transform(src, src @ rot.T + shift), np.c_[rot, shift], atol=1e-9)


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown identity backbone"):
        make_backbone("facenet")


def test_csim_is_only_arcface_and_dlib_keeps_its_own_name(arcface_like: Path, monkeypatch) -> None:
    """Protocol 2.0: CSIM is ArcFace's score; dlib's is reported as identity_dlib, never as CSIM."""
    from vlogger.core.config import load_config
    from vlogger.core.errors import UsageError
    from vlogger.evaluation import collection, identity

    monkeypatch.setattr(identity, "resolve", lambda name: arcface_like)
    protocol = load_config(None, "eval/protocol.yaml")
    assert CSIM.from_protocol(protocol).backbone.name == "arcface" and CSIM.needs.weights == ("arcface_w600k_r50",)
    assert collection.directions()["csim"] is True and "identity_dlib" in collection.directions()
    assert "identity_cosine" not in collection.directions()
    protocol["identity"]["backbones"] = ["dlib"]
    with pytest.raises(UsageError, match="arcface is not in"):
        CSIM.from_protocol(protocol)
