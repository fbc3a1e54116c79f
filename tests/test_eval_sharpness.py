"""CPBD in array operations (vlogger.evaluation.sharpness) against the `cpbd` package itself."""

from __future__ import annotations

import cpbd as reference
import cv2
import numpy as np
import pytest

from vlogger.core.video import decode_mp4_bytes
from vlogger.evaluation.sharpness import cpbd, edge_widths


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)


@pytest.mark.parametrize("name", ["retalking_face5", "liveportrait_d20", "upperbody_kim_7s"])
def test_scores_equal_the_package_on_real_frames(clips_dir, name):
    frames = decode_mp4_bytes((clips_dir / f"{name}.mp4").read_bytes())
    h, w = frames.shape[1:3]
    for frame in frames[[0, len(frames) // 2]]:
        crop = _gray(frame[h // 8 : h // 8 + min(h, w) // 2, w // 4 : w // 4 + min(h, w) // 2])
        blurred = cv2.GaussianBlur(crop, (0, 0), 2.0)
        for image in (crop, blurred):
            assert cpbd(image) == pytest.approx(reference.compute(image), abs=1e-12)
        assert cpbd(blurred) < cpbd(crop)


def test_widths_equal_the_package_on_a_ramp_an_edge_and_noise():
    """A step between two long ramps (widths past the cap), a peak between ramps, borders, noise."""
    from cpbd.compute import marziliano_method
    from cpbd.octave import sobel

    rng = np.random.default_rng(0)
    # (a slight vertical slope: with no vertical gradient anywhere the package measures no width at all)
    ramp = np.concatenate([np.linspace(0, 100, 150), np.linspace(160, 250, 150)]) + np.arange(20)[:, None] * 0.1
    peak = np.tile(np.concatenate([np.linspace(0, 200, 130), np.linspace(200, 10, 40), np.full(30, 10.0)]), (20, 1))
    noise = rng.integers(0, 255, (70, 90)).astype(np.float64)
    for image in (ramp, ramp[:, ::-1].copy(), peak, noise, np.zeros((64, 64))):
        edges = sobel(image)
        assert np.array_equal(edge_widths(edges, image), marziliano_method(edges, image))
    assert edge_widths(sobel(ramp), ramp).max() == 2 * (1 + 100)  # 150 rising pixels either side, capped
    assert cpbd(np.zeros((64, 64))) == reference.compute(np.zeros((64, 64))) == 0.0
