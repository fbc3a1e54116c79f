"""Hands, gaze and blinks: the hand track between strided detections, which hand is which, the
data contract's `parts`, the renderer's hand classes and iris, and the tracker on real frames
(both hands, one hand, a hand leaving and re-entering the view, a close-up without hands)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger.body.eyes import eye_params, iris_pixels
from vlogger.body.facemesh import FaceBasis
from vlogger.body.hand_basis import HandBasis, fit_hand_basis
from vlogger.body.hands import _TEMPLATE, hand_pose
from vlogger.body.params import PART_KEYS, require_parts
from vlogger.body.render import ControlRenderer
from vlogger.body.topology import EYES, IRIS, LEFT_HAND, RIGHT_HAND, SKIN
from vlogger.core import landmarks
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.errors import ContractError
from vlogger.core.hands import assign_sides, empty_hands, fill_between
from vlogger.core.spec import LEGACY_PARTS, DataSpec

SIZE = 256


def _hand(wrist: tuple[float, float], scale: float) -> np.ndarray:
    """(21, 4) a flat open hand (the proxy's template) at `wrist`, all points seen."""
    xy = _TEMPLATE * scale + np.asarray(wrist, np.float32)
    return np.concatenate([xy, np.zeros((21, 1)), np.ones((21, 1))], 1).astype(np.float32)


def test_strided_hands_are_interpolated_only_between_two_sightings():
    hands = np.full((7, 2, 21, 4), np.nan, np.float32)
    checked = np.zeros(7, bool)
    checked[[0, 3, 6]] = True
    hands[[0, 3, 6]] = empty_hands(3)
    hands[0, 0], hands[3, 0] = _hand((10, 10), 5), _hand((40, 10), 5)  # left hand seen at 0 and 3
    hands[3, 1] = _hand((100, 10), 5)  # right hand seen at 3 only
    out = fill_between(hands, checked)
    assert np.allclose(out[1, 0, 0, :2], [20, 10]) and np.allclose(out[2, 0, 0, :2], [30, 10])
    assert (out[1:3, 0, :, 3] == 1).all()
    assert (out[[1, 2, 4, 5], 1, :, 3] == 0).all() and (out[4:6, 0, :, 3] == 0).all()
    assert not np.isnan(out[..., 3]).any()


def test_sides_follow_the_pose_wrists_else_the_mirrored_label():
    pose = np.zeros((33, 4), np.float32)
    pose[15], pose[16] = [200, 300, 0, 0.9], [60, 300, 0, 0.9]  # person's left wrist on the image right
    wrists = np.array([[65.0, 295], [198, 305]])
    assert assign_sides(wrists, ["Left", "Left"], pose, 0.1) == [1, 0]
    assert assign_sides(wrists[1:], ["Right"], pose, 0.1) == [0]
    # no pose: mediapipe's labels assume a selfie image, so its "Left" is the person's right
    assert assign_sides(wrists, ["Left", "Right"], None, 0.1) == [1, 0]
    assert assign_sides(wrists, ["Right", "Right"], None, 0.1) == [1, 0]  # a tie goes by image side


def test_spec_parts_default_for_old_specs_and_mismatch_names_both():
    cfg = load_config(None, "preprocess/default.yaml")
    spec = DataSpec.from_preprocess_config(cfg, "mediapipe478", "abc")
    assert spec.parts == ("face", "body", "hands", "eyes")
    old = spec.to_dict()
    del old["parts"]  # index.json / checkpoint written before hands and eyes
    legacy = DataSpec.from_dict(old, "old/index.json")
    assert legacy.parts == LEGACY_PARTS
    assert DataSpec.from_dict(spec.to_dict(), "new").parts == spec.parts  # json list back to a tuple
    with pytest.raises(ContractError, match=r"parts: \['face', 'body'\] in old.*'hands', 'eyes'\] in new"):
        legacy.require_same(spec, "old", "new")
    assert legacy.preprocess_config(cfg)["tracking"]["hand_stride"] == 0  # inference tracks as training did
    cfg["tracking"]["hand_stride"] = 0
    assert DataSpec.from_preprocess_config(cfg, "fa68", None).parts == LEGACY_PARTS  # no hands, no iris


def test_params_without_a_promised_part_are_refused():
    params = {k: np.zeros(1) for part in LEGACY_PARTS for k in PART_KEYS[part]} | {"gaze": 0, "eyelid": 0}
    require_parts(params, (*LEGACY_PARTS, "eyes"), "clip a")
    with pytest.raises(ContractError, match=r"clip a: params.npz lacks hands, hand_visible .*'hands'"):
        require_parts(params, ("face", "body", "hands"), "clip a")


def test_hand_pose_is_position_and_size_free():
    a = _hand((50, 80), 10)[None, None]
    b = _hand((150, 20), 25)[None, None]
    pa, pb = hand_pose(a[..., :3], a[..., 3]), hand_pose(b[..., :3], b[..., 3])
    assert np.allclose(pa, pb, atol=1e-5) and np.allclose(pa[..., 0, :], 0)
    assert np.allclose(np.linalg.norm(pa[0, 0, 9, :2]), 1)
    assert (hand_pose(a[..., :3], np.zeros_like(a[..., 3])) == 0).all()


def test_hand_basis_recovers_the_gestures_of_both_hands(tmp_path):
    rng = np.random.default_rng(0)
    modes = rng.normal(size=(3, 21, 2)).astype(np.float32) * 0.1
    modes[:, [0, 9]] = 0  # wrist and middle knuckle fixed: the palm length, which hand_pose divides by, too

    def hands(n: int) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((n, 2, 21, 3), np.float32)
        for side, sign in ((0, -1.0), (1, 1.0)):  # the left hand is the mirror image
            shape = _TEMPLATE + np.einsum("tk,kpc->tpc", rng.normal(size=(n, 3)), modes)
            out[:, side, :, :2] = shape * [sign, 1] * rng.uniform(20, 40, (n, 1, 1)) + rng.uniform(0, 200, (n, 1, 2))
        return out, np.ones((n, 2, 21), np.float32)

    train, test = hands(200), hands(20)
    basis = fit_hand_basis([train], n_components=3)
    pose = hand_pose(*test)
    assert np.abs(basis.decode(basis.encode(pose)) - pose).max() < 1e-3
    assert basis.explained.sum() > 0.999
    coarse = fit_hand_basis([train], n_components=1)
    assert np.abs(coarse.decode(coarse.encode(pose)) - pose).max() > 0.01
    assert HandBasis.load(basis.save(tmp_path / "hands.npz")).basis_id == basis.basis_id


@pytest.fixture(scope="module")
def face() -> tuple[FaceBasis, torch.Tensor]:
    basis = FaceBasis.load()
    verts = torch.as_tensor(basis.mean) * 120 + torch.tensor([128.0, 90, 0])
    return basis, verts[None]


def _render(basis, verts, parts, **kw):
    r = ControlRenderer(torch.as_tensor(basis.faces), torch.as_tensor(basis.labels), torch.as_tensor(basis.mean), SIZE,
                        parts)  # fmt: skip
    ref = r.reference(torch.zeros(1, 3, SIZE, SIZE), verts)
    return r(verts, ref, **kw)


def test_hands_are_their_own_classes_in_front_of_the_face(face):
    basis, verts = face
    legacy = _render(basis, verts, LEGACY_PARTS)
    assert legacy.stacked.shape[1] == 14  # old checkpoints' controls are unchanged
    hands = torch.as_tensor(np.stack([_hand((128, 190), 40), _hand((40, 250), 30)]))[None]
    hands[:, 1, :, 3] = 0  # right hand not seen
    c = _render(basis, verts, (*LEGACY_PARTS, "hands"), hands=hands[..., :3], hand_visible=hands[..., 3])
    assert c.stacked.shape[1] == 17
    label = c.semantic.argmax(1)[0]
    old = legacy.semantic.argmax(1)[0]
    on_face = (label == LEFT_HAND) & (old == SKIN)
    assert on_face.sum() > 200  # the hand covers the chin
    assert (label == RIGHT_HAND).sum() == 0
    assert c.coords[0, 2][label == LEFT_HAND].sub(0.55).abs().max() < 1e-4  # canonical z codes the hand
    keep = label != LEFT_HAND
    assert torch.equal(label[keep], old[keep])  # everything else renders as before


def test_warped_reference_carries_the_hand_to_its_new_place(face):
    basis, verts = face
    parts = (*LEGACY_PARTS, "hands")
    r = ControlRenderer(torch.as_tensor(basis.faces), torch.as_tensor(basis.labels), torch.as_tensor(basis.mean), SIZE,
                        parts)  # fmt: skip
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[:, 1, 170:256, 0:90] = 1.0  # the reference shows a green hand at the bottom left
    seen = torch.ones(1, 2, 21)
    seen[:, 1] = 0
    before = torch.as_tensor(_hand((45, 240), 30)[:, :3])
    after = before + torch.tensor([150.0, -20, 0])  # the hand moved right, over the chest
    ref = r.reference(image, verts, hands=torch.stack([before, before])[None], hand_visible=seen)
    c = r(verts, ref, hands=torch.stack([after, after])[None], hand_visible=seen)
    hand = c.semantic.argmax(1)[0] == LEFT_HAND
    assert hand.sum() > 100 and (hand.nonzero()[:, 1] > 150).all()
    assert c.mask[0, 0][hand].mean() > 0.9 and c.warped[0, 1][hand].mean() > 0.9  # its own colour, moved


def test_iris_is_drawn_inside_the_eyes_where_the_gaze_points(face):
    basis, verts = face
    corners = verts[:, landmarks.FORMATS["mediapipe478"]["eye_corners"]]
    eye = torch.eye(3)[None]
    plain = _render(basis, verts, (*LEGACY_PARTS, "eyes")).semantic.argmax(1)[0]
    centroids = []
    for yaw in (-0.4, 0.4):
        iris = iris_pixels(corners, eye, torch.tensor([[[yaw, 0.0], [yaw, 0.0]]]))
        label = _render(basis, verts, (*LEGACY_PARTS, "eyes"), iris=iris).semantic.argmax(1)[0]
        drawn = label == IRIS
        assert drawn.sum() > 20 and (plain[drawn] == EYES).all()  # the eye opening clips the disc
        centroids.append(drawn.nonzero()[:, 1].float().mean())
    assert centroids[1] - centroids[0] > 5  # looking right (canonical +x) moves the iris right


def test_gaze_and_eyelid_from_posed_landmarks(face):
    verts = face[1]
    lmk = verts.numpy().copy()
    fit = {"scale": np.array([120.0]), "rotation": np.eye(3)[None], "translation": np.array([[128.0, 90, 0]])}
    rest = eye_params(lmk, "mediapipe478", fit)
    width = np.linalg.norm(lmk[0, 263] - lmk[0, 362])
    lmk[:, 468:478, 0] += 0.1 * width  # both irises move right by a tenth of an eye width
    moved = eye_params(lmk, "mediapipe478", fit)
    assert np.allclose(moved["eyelid"], rest["eyelid"]) and (rest["eyelid"] > 0.15).all()
    assert np.all(moved["gaze"][..., 0] - rest["gaze"][..., 0] > 0.2)
    assert np.allclose(moved["gaze"][..., 1], rest["gaze"][..., 1], atol=1e-5)
    corners = torch.as_tensor(landmarks.point(lmk, "mediapipe478", "eye_corners"))
    iris = iris_pixels(corners, torch.eye(3)[None], torch.as_tensor(moved["gaze"]))
    assert np.allclose(iris[0, :, :2], lmk[0, [473, 468], :2], atol=0.05)


def _frames(path, start: float, count: int) -> list[np.ndarray]:
    """`count` frames from `start` s at 25 fps, at tracking size (640 px longest side)."""
    from vlogger.core.video import probe, read_frames, resample_indices, scaled_size

    info = probe(path)
    idx = resample_indices(info.frame_times, info.duration, 25)[round(start * 25) :][:count]
    return list(read_frames(info, idx, scaled_size(info.width, info.height, 640)))


def _track(frames: list[np.ndarray]):
    from vlogger.core.tracking import make_tracker

    tracker = make_tracker(load_config(None, "preprocess/default.yaml")["tracking"])
    tracker.start()
    for f in frames:
        tracker.step(f)
    return tracker.finish()


def test_tracker_follows_two_hands_one_hand_a_hand_leaving_and_returning_and_one_half_out(shared_dir):
    frames = _frames(shared_dir / "data" / "corpus" / "latentsync_demo3_video.mp4", 2.0, 30)
    track = _track(frames)
    seen = track.hands[..., 3].max(-1) > 0  # (T, 2)
    assert seen.mean(0).min() >= 0.7, seen.mean(0)
    both = seen.all(1)
    assert (track.hands[both, 0, 0, 0] > track.hands[both, 1, 0, 0]).all()  # the left hand is on the image right
    pose_wrists = track.pose[:, [15, 16], :2]
    assert np.nanmedian(np.linalg.norm(track.hands[:, :, 0, :2] - pose_wrists, axis=-1)) < 15
    h, w = frames[0].shape[:2]
    hidden = [f.copy() for f in frames]
    for f in hidden[10:20]:  # the person's left hand (image right, below the shoulders) leaves the view
        f[int(0.45 * h) :, int(0.55 * w) :] = 128
    again = _track(hidden)
    seen = again.hands[..., 3].max(-1) > 0
    assert seen[:10, 0].sum() >= 6 and seen[12:19, 0].sum() == 0 and seen[22:, 0].sum() >= 5, seen[:, 0]
    assert seen[12:19, 1].sum() >= 5  # one hand only: still the right one
    assert ((again.hands[..., 3] == 0) | (again.hands[..., 3] == 1)).all()
    edge = int(np.nanmedian(track.hands[:, 0, 0, 0])) - 10  # the frame ends just left of the left wrist
    cut = _track([np.ascontiguousarray(f[:, :edge]) for f in frames])
    found = ~np.isnan(cut.hands[:, 0, 0, 0])
    vis = cut.hands[found, 0, :, 3]
    assert found.mean() >= 0.7 and vis[:, 0].mean() < 0.2 and vis.mean() > 0.5  # half a hand: the wrist is out
    x = cut.hands[found, 0, :, 0]
    assert (x[vis > 0] < edge).all() and (x[vis == 0] >= edge).mean() > 0.8  # interpolated frames take both ends' 0


def test_close_up_has_no_hands_and_blinks_are_measured(clips_dir):
    track = _track(_frames(clips_dir / "retalking_face1.mp4", 0.0, 25))
    assert (track.hands[..., 3] == 0).all() and track.found.all()
    aperture = landmarks.eye_aperture(track.face, "mediapipe478")
    assert ((aperture > 0.0) & (aperture < 0.6)).all()


@pytest.mark.slow
def test_shards_of_clasped_gesturing_hands_and_a_close_up_are_valid(shared_dir, tmp_path):
    """2.4 s of a seated speaker whose hands start clasped (fingers interlaced: the corpus has no
    crossed arms) and then gesture, and of a close-up, through `vlogger preprocess` with an
    upper-body crop (configs/preprocess/upper_body.yaml): params carry hands and eyes as the spec
    says, the hands fall inside the crop, and the clips render."""
    from vlogger.body.control_video import render_shard_clip
    from vlogger.body.fitting import load_body
    from vlogger.core.audio import load_audio
    from vlogger.core.video import encode_mp4
    from vlogger.datasets.shards import all_shard_urls, clip_arrays
    from vlogger.preprocessing.run import preprocess

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("corpus/latentsync_demo3_video.mp4", "clips/retalking_face1.mp4"):
        src = shared_dir / "data" / name
        frames = np.stack(_frames(src, 0.0, 60))
        audio = load_audio(src, 16000)[: 60 * 640]
        (inputs / src.name).write_bytes(encode_mp4(frames, 25, "libx264", 18, "veryfast", audio, 16000))
    cfg = load_config(REPO_ROOT / "configs" / "preprocess" / "upper_body.yaml", "preprocess/default.yaml")
    stats = preprocess(inputs, tmp_path / "out", cfg)
    assert stats["clips"] == 2 and tuple(stats["index"]["spec"]["parts"]) == ("face", "body", "hands", "eyes")
    clips = {c["key"]: c for c in clip_arrays(all_shard_urls(tmp_path / "out"), ["params.npz", "hands.npy", "mp4"])}
    for key, clip in clips.items():
        p = clip["params.npz"]
        assert p["hands"].shape == (60, 2, 21, 3) and p["hand_visible"].shape == (60, 2, 21)
        assert p["gaze"].shape == (60, 2, 2) and p["eyelid"].shape == (60, 2)
        assert np.isfinite(p["hands"]).all() and set(np.unique(p["hand_visible"])) <= {0.0, 1.0}
        seen = p["hand_visible"].max(-1).mean(0)
        if "retalking" in key:
            assert (seen == 0).all()
        else:
            assert (seen > 0.5).all(), seen
            inside = (p["hands"][..., :2] > 0) & (p["hands"][..., :2] < 256)
            assert inside.all(-1)[p["hand_visible"] > 0].mean() > 0.9  # the upper-body crop holds the hands
        parts = DataSpec.of_shards(tmp_path / "out").parts
        video = render_shard_clip({"mp4": clip["mp4"]}, p, load_body("facemesh").mesh, 64, parts=parts)
        assert video.shape == (60, 64, 256, 3)
