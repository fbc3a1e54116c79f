"""LSE's reference mode: S3FD in the official file layout, and syncnet_python's track, smoothing and crop rules.

The official `sfd_face.pth` is not reachable here; a file with its keys and shapes (random values) stands in."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from vlogger.evaluation import crops
from vlogger.evaluation.s3fd import S3FD, decode, detect_faces, load_s3fd, nms, priors
from vlogger.zoo import MissingWeights

# Keys and shapes of sfd_face.pth, read off joonson/syncnet_python detectors/s3fd/nets.py (S3FDNet): the VGG
# convolutions sit at these ModuleList indices (ReLUs and pools between them hold no parameters).
_VGG_CONVS = {
    0: (64, 3, 3), 2: (64, 64, 3), 5: (128, 64, 3), 7: (128, 128, 3), 10: (256, 128, 3), 12: (256, 256, 3),
    14: (256, 256, 3), 17: (512, 256, 3), 19: (512, 512, 3), 21: (512, 512, 3), 24: (512, 512, 3),
    26: (512, 512, 3), 28: (512, 512, 3), 31: (1024, 512, 3), 33: (1024, 1024, 1),
}  # fmt: skip
_EXTRAS = {0: (256, 1024, 1), 1: (512, 256, 3), 2: (128, 512, 1), 3: (256, 128, 3)}
_HEAD_IN = (256, 512, 512, 1024, 512, 256)


def official_shapes() -> dict[str, tuple[int, ...]]:
    out = {}
    for group, convs in (("vgg", _VGG_CONVS), ("extras", _EXTRAS)):
        for i, (cout, cin, k) in convs.items():
            out[f"{group}.{i}.weight"], out[f"{group}.{i}.bias"] = (cout, cin, k, k), (cout,)
    for i, cin in enumerate(_HEAD_IN):
        out[f"loc.{i}.weight"], out[f"loc.{i}.bias"] = (4, cin, 3, 3), (4,)
        n = 4 if i == 0 else 2
        out[f"conf.{i}.weight"], out[f"conf.{i}.bias"] = (n, cin, 3, 3), (n,)
    out |= {"L2Norm3_3.weight": (256,), "L2Norm4_3.weight": (512,), "L2Norm5_3.weight": (512,)}
    return out


@pytest.fixture(scope="module")
def official_like(tmp_path_factory):
    """A state dict in the official layout, written from the table above (not from our module)."""
    gen = torch.Generator().manual_seed(0)
    state = {k: 0.01 * torch.randn(s, generator=gen) for k, s in official_shapes().items()}
    path = tmp_path_factory.mktemp("s3fd") / "sfd_face.pth"
    torch.save(state, path)
    return path


def test_official_layout_loads_strict(official_like):
    model = load_s3fd(official_like)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official_shapes()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))
    monkeypatch.delenv("VLOGGER_ZOO_REGISTRY", raising=False)
    with pytest.raises(MissingWeights, match="vlogger zoo fetch s3fd_face"):
        load_s3fd()


def test_heads_priors_and_decoding_line_up():
    """Six heads at strides 4..128 give one prior per cell; zero offsets decode to the priors themselves."""
    model = S3FD().eval()
    with torch.no_grad():
        loc, face, maps = model(torch.zeros(1, 3, 128, 160))
    assert maps == [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3), (1, 2)]
    p = priors((128, 160), maps)
    assert loc.shape == (1, len(p), 4) and face.shape == (1, len(p)) and ((face >= 0) & (face <= 1)).all()
    # first prior: the cell at (0, 0) of the stride-4 map, 16 px wide
    assert p[0].tolist() == pytest.approx([2 / 160, 2 / 128, 16 / 160, 16 / 128])
    box = decode(torch.zeros(1, 4), p[:1])[0]
    assert box.tolist() == pytest.approx([(2 - 8) / 160, (2 - 8) / 128, (2 + 8) / 160, (2 + 8) / 128])


def test_detect_faces_runs_on_a_real_frame(official_like, shared_dir):
    img = cv2.cvtColor(cv2.imread(str(shared_dir / "data" / "images" / "portrait_hallo6.jpg")), cv2.COLOR_BGR2RGB)
    boxes = detect_faces(load_s3fd(official_like), img, conf_th=0.0)  # random weights: keep everything
    assert boxes.ndim == 2 and boxes.shape[1] == 5 and len(boxes) > 0
    assert ((boxes[:, 4] >= 0) & (boxes[:, 4] <= 1)).all() and (np.diff(boxes[:, 4]) <= 0).all()


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], float)
    scores = np.array([0.6, 0.9, 0.5, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 3, 0, 2]


def _dets(n: int, side: float, start: int = 0, total: int | None = None) -> list[np.ndarray]:
    out = [np.zeros((0, 5)) for _ in range(total or n)]
    for t in range(start, start + n):
        out[t] = np.array([[10.0 + t * 0.5, 20.0, 10.0 + t * 0.5 + side, 20.0 + side, 0.99]])
    return out


def test_tracks_follow_syncnet_pythons_rules():
    assert len(crops.face_tracks(_dets(120, 150))) == 1
    assert crops.face_tracks(_dets(100, 150)) == []  # needs more than 100 frames
    assert crops.face_tracks(_dets(120, 90)) == []  # faces of 100 px or less
    gappy = _dets(150, 150)
    for t in range(60, 80):  # a 20-frame gap is bridged and interpolated
        gappy[t] = np.zeros((0, 5))
    ((span, boxes),) = crops.face_tracks(gappy)
    assert span.tolist() == list(range(150)) and boxes[70, 0] == pytest.approx(10 + 70 * 0.5)
    for t in range(60, 90):  # a 30-frame gap ends the track: two pieces of 60 frames, both too short
        gappy[t] = np.zeros((0, 5))
    assert crops.face_tracks(gappy) == []


def test_smoothing_is_a_13_frame_median_of_size_and_centre():
    boxes = np.tile([100.0, 100.0, 200.0, 220.0], (30, 1))
    boxes[15] += [50, 0, 50, 0]  # a one-frame jump
    sxy = crops.smoothed(boxes)
    assert sxy[15].tolist() == [60.0, 150.0, 160.0]  # s = max(w, h) / 2; the jump is gone
    assert sxy[0, 0] == 60.0 and sxy[:6, 1].tolist() == [150.0] * 6  # zero padding is outvoted at the ends


def test_reference_crop_cuts_the_original_window():
    frame = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    s, x, y = 50.0, 200.0, 120.0
    crop = crops.reference_crop(frame, s, x, y)
    expected = cv2.resize(frame[70:210, 130:270], (224, 224))  # [y - s, y + 1.8 s] x [x - 1.4 s, x + 1.4 s]
    assert np.array_equal(crop, expected)
    edge = crops.reference_crop(frame, s, 10.0, 10.0)  # past the frame's corner: grey 110
    assert (edge[0, 0] == 110).all()


def test_xvid_and_jpeg_round_trip_keeps_count_and_look(tmp_path, clips_dir):
    from vlogger.core.video import probe, read_frames

    info = probe(clips_dir / "retalking_face5.mp4")
    frames = np.stack(list(read_frames(info, range(12), (224, 224))))[..., ::-1].copy()
    back = crops.xvid_round_trip(frames, 25, str(tmp_path))
    mse = np.mean((back.astype(float) - frames) ** 2)
    assert back.shape == frames.shape and 0 < mse < 60  # lossy, but the same pictures


def test_reference_mode_scores_tracks_end_to_end(monkeypatch, clips_dir):
    """The reference path with random SyncNet weights and S3FD replaced by a box per frame (the real weights are
    not here): one track, scored on its crops and its audio."""
    from vlogger.core.config import load_config
    from vlogger.evaluation import lse
    from vlogger.evaluation.metric import EvalVideo
    from vlogger.evaluation.syncnet_model import SyncNet
    from vlogger.evaluation.tracks import TrackedVideo, open_video, video_audio

    protocol = load_config(None, "eval/protocol.yaml")
    source = open_video(clips_dir / "liveportrait_d11.mp4", protocol)  # 512 px, 225 frames
    w, h = source.info.width, source.info.height
    box = np.array([[w * 0.3, h * 0.25, w * 0.7, h * 0.7, 0.99]])
    monkeypatch.setattr(lse, "detect_faces", lambda model, frame: box if frame.shape[:2] == (h, w) else None)
    torch.manual_seed(0)
    metric = lse.LSE(model=SyncNet(), detector=S3FD())
    gen = TrackedVideo(
        str(source.path),
        np.zeros((source.n_frames, 478, 3)),
        np.ones(source.n_frames, bool),
        video_audio(source, protocol),
        25,
        replace(source),
    )
    measured = metric.measure(EvalVideo("d11", gen), None)
    assert measured.row["lse_tracks"] == 1 and np.isfinite(measured.row["lse_d"]) and measured.row["lse_c"] >= 0
