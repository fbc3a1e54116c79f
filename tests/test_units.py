"""Small pieces on inputs with a known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vlogger.core import crop
from vlogger.core.config import load_config
from vlogger.core.errors import BadInput
from vlogger.core.mel import LogMel, mel_window
from vlogger.core.tracking import interpolate_missing
from vlogger.core.video import resample_indices
from vlogger.preprocessing import segments, splits


def test_resample_30_to_25_keeps_duration_and_order():
    times = np.arange(300) / 30.0  # 10 s at 30 fps
    idx = resample_indices(times, 10.0, 25)
    assert len(idx) == 250
    assert np.all(np.diff(idx) >= 1) and np.all(np.diff(idx) <= 2)
    assert idx[125] == 150  # t = 5 s shows source frame 150


def test_resample_variable_frame_rate_uses_timestamps():
    # 1 s at 10 fps then 1 s at 50 fps
    times = np.concatenate([np.arange(10) / 10, 1 + np.arange(50) / 50])
    idx = resample_indices(times, 2.0, 25)
    assert len(idx) == 50
    assert idx[0] == 0 and idx[3] == 1  # t=0.12 s: still the frame shown since 0.1 s
    assert idx[25] == 10 and idx[26] == 12  # t=1.04 s: frame 10 + 2 of the fast part


def test_mel_rows_align_with_video_frames():
    sr, fps = 16000, 25
    audio = np.zeros(sr * 2, np.float32)
    k = 20  # a loud burst exactly during video frame 20
    audio[k * sr // fps : (k + 1) * sr // fps] = np.sin(np.arange(sr // fps) * 0.3)
    mel = LogMel().for_frames(audio, 50, fps)
    assert mel.shape == (200, 80)
    energy = mel.astype(np.float32).mean(1)
    loud = np.nonzero(energy > energy.max() - 3)[0]
    assert loud.min() >= 4 * k - 1 and loud.max() <= 4 * k + 4


def test_mel_window_pads_outside_the_clip():
    mel = np.arange(40 * 2, dtype=np.float32).reshape(40, 2)  # 10 frames x 4 rows
    w = mel_window(mel, start=0, n_frames=3, rows_per_frame=4, context=2)
    assert w.shape == (28, 2)
    assert np.all(w[:8] == mel.min()) and np.array_equal(w[8:], mel[:20])


def test_logmel_batched_matches_single():
    x = torch.randn(2, 16000)
    m = LogMel()
    assert torch.allclose(m(x)[1], m(x[1]), atol=1e-5)


def test_shot_cut_found_between_different_scenes_only():
    rng = np.random.default_rng(0)
    a = np.full((30, 48, 48, 3), (200, 40, 40), np.uint8) + rng.integers(0, 10, (30, 48, 48, 3), dtype=np.uint8)
    b = np.full((30, 48, 48, 3), (30, 60, 200), np.uint8) + rng.integers(0, 10, (30, 48, 48, 3), dtype=np.uint8)
    hists = np.stack([segments.color_histogram(f) for f in np.concatenate([a, b])])
    assert segments.shot_cuts(hists, 0.5).tolist() == [30]


def test_split_clips_at_cuts_gaps_and_max_length():
    found = np.ones(300, bool)
    found[100:103] = False  # short gap: bridged
    found[200:220] = False  # long gap: split
    clips, dropped = segments.split_clips(300, np.array([50]), found, min_len=60, max_len=100, max_gap=5)
    assert clips == [(50, 125), (125, 200), (220, 300)]
    assert dropped and dropped[0][:2] == (0, 50) and "too short" in dropped[0][2]


def test_interpolate_missing_fills_gaps_linearly():
    x = np.array([[0.0], [np.nan], [np.nan], [3.0]])
    assert np.allclose(interpolate_missing(x)[:, 0], [0, 1, 2, 3])


def test_crop_is_smooth_and_square():
    rng = np.random.default_rng(1)
    t = np.arange(200)
    centre = np.stack([300 + 40 * np.sin(t / 30), 200 + 10 * np.cos(t / 20)], 1)
    face = centre[:, None, :] + rng.normal(0, 3, (200, 50, 2))  # noisy landmarks
    face = np.concatenate([face, np.zeros((200, 50, 1))], axis=2).astype(np.float32)
    boxes = crop.crop_boxes(face, 25, 2.5, 0.3, 0.5)
    assert np.ptp(boxes[:, 2]) == 0
    raw = (face[..., :2].min(1) + face[..., :2].max(1)) / 2
    jitter_raw = np.abs(np.diff(raw, 2, axis=0)).mean()
    jitter_box = np.abs(np.diff(boxes[:, :2], 2, axis=0)).mean()
    assert jitter_box < jitter_raw / 10


def test_crop_kept_inside_frame():
    face = np.tile(np.array([[[20, 20, 0], [80, 90, 0]]], np.float32), (10, 1, 1))
    boxes = crop.crop_boxes(face, 25, 3.0, 0.3, 0.5, frame_size=(120, 100))
    assert np.all(boxes[:, 2] <= 100) and np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 0] + boxes[:, 2] <= 120 + 1e-3) and np.all(boxes[:, 1] + boxes[:, 2] <= 100 + 1e-3)


def test_split_by_identity_is_stable_and_roughly_the_fraction():
    ids = [f"person{i}" for i in range(2000)]
    val = [i for i in ids if splits.split_of(i, 0.1) == "val"]
    assert 150 < len(val) < 250
    assert val == [i for i in ids if splits.split_of(i, 0.1) == "val"]


def test_identities_file_groups_people_and_holds_out_test_identities(tmp_path):
    table = tmp_path / "ids.yaml"
    table.write_text("a/x_1.mp4: anna\nx_2.mp4: anna\nx_3: anna\n")
    who = [splits.identity_of(rel, "stem", str(table)) for rel in ("a/x_1.mp4", "b/x_2.mp4", "c/x_3.mkv", "d/y.mp4")]
    assert who == ["anna", "anna", "anna", "y"]  # by path, name, stem; unlisted files keep the name rule
    assert splits.split_of("anna", 1.0, ["anna"]) == "test" and splits.split_of("y", 0.0, ["anna"]) == "train"
    shipped = splits.read_identities(str(Path(__file__).parents[1] / "configs/identities/corpus.yaml"))
    assert shipped["pcavs_Input_00002.mp4"] == shipped["pcavs_Pose_Source_517600055.mp4"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(BadInput, match=r"bad.yaml.*mapping"):
        splits.read_identities(str(bad))


def test_config_overrides_parse_yaml_and_reject_typos():
    cfg = load_config(None, "preprocess/default.yaml", ["crop.size=512", "ingest.extensions=[mp4]"])
    assert cfg["crop"]["size"] == 512 and cfg["ingest"]["extensions"] == ["mp4"]
    with pytest.raises(KeyError, match=r"crop\.sise"):
        load_config(None, "preprocess/default.yaml", ["crop.sise=512"])


def test_config_files_are_checked_against_the_full_default(tmp_path):
    """An overlay file with a key the stage's default lacks names the file and the key; null
    defaults take a whole section (super-resolution) and scalars a list (several shard folders)."""
    bad = tmp_path / "mine.yaml"
    bad.write_text("optim:\n  lr: 1.0e-4\n  warmup: 100\n")
    with pytest.raises(KeyError, match=r"mine\.yaml: unknown config key 'optim\.warmup'"):
        load_config(bad, "train/motion.yaml")
    cfg = load_config(["configs/train/video_base.yaml", "configs/train/superres_base.yaml"], "train/video.yaml")
    assert cfg["superres"]["from_size"] == 128 and cfg["data"]["size"] == 256
    cfg = load_config(None, "train/motion.yaml", ["data.shards=[a, b]"])
    assert cfg["data"]["shards"] == ["a", "b"]


def test_held_out_tail_never_reaches_windows_or_references():
    import random

    from vlogger.datasets.windows import ClipWindows

    mapper = ClipWindows(window=10, min_ref_gap=5, per_clip=50, seed=0).hold_out({"kept": 2.0})
    mapper._rng = random.Random(0)
    held = {"n_frames": 100, "fps": 25, "identity": "kept"}
    other = {"n_frames": 100, "fps": 25, "identity": "other"}
    assert mapper.usable_frames(held) == 50 and mapper.usable_frames(other) == 100
    pairs = mapper.starts(held)
    assert max(s + 10 for s, _ in pairs) <= 50 and max(r for _, r in pairs) < 50
    assert max(s + 10 for s, _ in mapper.starts(other)) > 50  # other identities keep their tail
    assert ClipWindows(10, 5, None, 0).hold_out(4.5).starts(held) == []  # 100 - 112 frames: nothing left


def correlation_of(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


@pytest.mark.parametrize("correlation", [0.0, 0.5, 1.0])
def test_correlated_noise_shares_that_fraction_across_frames_and_windows(correlation):
    from vlogger.models.diffusion import correlated_noise

    shape = (64, 2, 3, 16, 16)  # 64 samples of 2 frames
    gen = torch.Generator().manual_seed(0)
    own = correlated_noise(shape, correlation, gen, "cpu")  # a common part per sample, drawn inside
    assert correlation_of(own[:, 0], own[:, 1]) == pytest.approx(correlation, abs=0.02)
    assert own.std().item() == pytest.approx(1.0, abs=0.02)
    common = torch.randn(64, 1, 3, 16, 16, generator=gen)  # one common part given to two windows
    window, next_window = (correlated_noise(shape, correlation, gen, "cpu", common) for _ in range(2))
    assert correlation_of(window[:, 1], next_window[:, 0]) == pytest.approx(correlation, abs=0.02)
