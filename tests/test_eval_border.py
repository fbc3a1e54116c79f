"""The border scores' parts on shapes where the answer is known (the real-data check is in test_benchmark)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger.body.render import feather_mask
from vlogger.core.errors import BadInput
from vlogger.core.paste_mask import mask_path, read_paste_mask, write_paste_mask
from vlogger.evaluation.border import contour_bands, gradient_energy


def test_bands_follow_the_contour_and_not_the_frame_edge():
    left = np.zeros((32, 32), bool)
    left[:, :12] = True  # touches three edges of the frame: only column 12 | 11 is a contour
    band, flanks = contour_bands(left, 1)
    assert set(np.nonzero(band)[1]) == {11, 12} and set(np.nonzero(flanks)[1]) == {9, 10, 13, 14}
    for full in (np.ones((8, 8), bool), np.zeros((8, 8), bool)):
        assert not any(b.any() for b in contour_bands(full, 1))


def test_a_hard_edge_is_a_ridge_on_the_band_and_a_feathered_one_spreads_it():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 18**2
    band, flanks = contour_bands(disc, 1)
    alpha = {"hard": torch.from_numpy(disc)[None, None].float()}
    alpha["feathered"] = feather_mask(alpha["hard"], 0.04 * 64)
    ridge = {}
    for name, a in alpha.items():
        frame = (a[0, 0].numpy()[..., None] * 200 + 30).repeat(3, -1).round().astype(np.uint8)
        e = gradient_energy(frame)
        ridge[name] = e[band].mean() / max(e[flanks].mean(), 1e-12)
    assert ridge["hard"] > 20 and ridge["feathered"] < ridge["hard"] / 5


def test_paste_mask_file_round_trip_and_a_bad_one_named(tmp_path):
    video = tmp_path / "clip.mp4"
    masks = np.random.default_rng(0).random((5, 16, 16)) > 0.5
    assert write_paste_mask(video, masks) == tmp_path / "clip.paste.npz"
    assert np.array_equal(read_paste_mask(video), masks)
    assert read_paste_mask(tmp_path / "other.mp4") is None
    mask_path(video).write_bytes(b"not a zip")
    with pytest.raises(BadInput, match=r"clip\.paste\.npz: not a paste mask file"):
        read_paste_mask(video)
