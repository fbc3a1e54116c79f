"""PSNR/SSIM inside a region (the hands' in benchmarks/hands_stage2.py) on real frames: a full
region gives the whole-frame scores, a change outside the region leaves it untouched, and a change
inside it weighs by the region's share of the frame."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger.core.video import decode_frames
from vlogger.evaluation.motion import PSNR_CAP, psnr, ssim
from vlogger.evaluation.region import region_scores


@pytest.fixture(scope="module")
def frames(clips_dir) -> np.ndarray:
    import cv2

    raw = decode_frames((clips_dir / "upperbody_kim_7s.mp4").read_bytes(), [0, 30, 60, 90])
    return np.stack([cv2.resize(f, (96, 96), interpolation=cv2.INTER_AREA) for f in raw])


def test_region_scores_on_real_frames(frames):
    rng = np.random.default_rng(0)
    noisy = (frames + rng.normal(0, 12, frames.shape)).clip(0, 255).astype(np.uint8)
    full = region_scores(noisy, frames, np.ones(frames.shape[:3], bool))
    assert np.allclose(full["psnr"].mean(), psnr(noisy, frames), atol=1e-3)
    assert np.allclose(full["ssim"].mean(), ssim(noisy, frames), atol=1e-4)
    assert (full["pixels"] == 96 * 96).all()

    mask = np.zeros(frames.shape[:3], bool)
    mask[[1, 3], 50:70, 20:44] = True  # a hand-sized box in frames 1 and 3 only
    outside = frames.copy()
    outside[:, :, 60:] = noisy[:, :, 60:]  # changed >= 16 px right of the box: out of its SSIM windows
    out = region_scores(outside, frames, mask)
    assert list(out["frame"]) == [1, 3] and (out["pixels"] == 20 * 24).all()
    assert (out["psnr"] == PSNR_CAP).all() and np.allclose(out["ssim"], 1, atol=1e-5)

    inside = frames.copy()
    inside[mask] = noisy[mask]  # all of the error in the box: its MSE is the frame's x frame/box area
    box, whole = region_scores(inside, frames, mask), region_scores(inside, frames, np.ones_like(mask))
    gain = whole["psnr"][[1, 3]] - box["psnr"]
    assert np.allclose(gain, 10 * np.log10(96 * 96 / (20 * 24)), atol=1e-6)
    assert (box["ssim"] < whole["ssim"][[1, 3]] - 0.1).all()
