"""CPBD sharpness (Narvekar & Karam 2011) as the `cpbd` package computes it, in array operations.

Why not `cpbd.compute` itself: its edge-width search and block histogram are per-pixel Python
loops, about 1.4 s for one 400-px face crop, which made CPBD most of an evaluation's time. The
maths here is the package's, step for step (its Canny and Sobel edge maps are called as they
are, its quirks kept: a pixel whose horizontal gradient is zero counts as a 0-degree edge, only
horizontal widths are measured, a width stops at 101); tests/test_eval_sharpness.py checks the
scores equal the package's on real frames.
"""

from __future__ import annotations

import numpy as np
from cpbd.compute import BETA, BLOCK_HEIGHT, BLOCK_WIDTH, THRESHOLD, WIDTH_JNB
from cpbd.octave import sobel
from skimage.feature import canny

MAX_MARGIN = 100  # the package's search stops after this many steps either side


def _run_left(cont: np.ndarray) -> np.ndarray:
    """(H, W) number of consecutive True values ending at each column, counted leftwards."""
    run = np.zeros(cont.shape, np.int64)
    for k in range(1, cont.shape[1]):
        run[:, k] = (run[:, k - 1] + 1) * cont[:, k]
    return run


def _run_right(cont: np.ndarray) -> np.ndarray:
    """(H, W) number of consecutive True values starting at each column, counted rightwards."""
    return _run_left(cont[:, ::-1])[:, ::-1]


def edge_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Marziliano edge widths: (H, W), 0 off the edges, at an edge the run of pixels either side
    over which the intensity keeps rising (or falling) along the row, each side capped at 101."""
    gy, gx = np.gradient(image)
    with np.errstate(divide="ignore", invalid="ignore"):
        angles = np.where(gx != 0, np.arctan2(gy, gx) * (180 / np.pi), 0.0)
    angles[(gx == 0) & (gy == np.pi / 2)] = 90  # the package's own special case
    widths = np.zeros(image.shape)
    if not np.any(angles):
        return widths
    q = 45 * np.round(angles / 45)
    # 0 where there is no neighbour (column 0, column W - 1): neither rising nor falling, so a run stops
    d_left = np.zeros(image.shape)  # image[k - 1] - image[k] at column k >= 1
    d_left[:, 1:] = image[:, :-1] - image[:, 1:]
    d_right = np.zeros(image.shape)  # image[k + 1] - image[k] at column k <= W - 2
    d_right[:, :-1] = image[:, 1:] - image[:, :-1]
    inner = np.zeros(image.shape, bool)
    inner[1:-1, 1:-1] = True
    edge = inner & (edges == 1)
    for rising_left, mask in ((True, (q == 180) | (q == -180)), (False, q == 0)):
        # rising_left: brighter to the left of the edge (180 degrees), else to the right (0)
        left = _run_left((d_left > 0) if rising_left else (d_left < 0))
        right = _run_right((d_right < 0) if rising_left else (d_right > 0))
        w = np.zeros(image.shape)
        w[:, 1:-1] = 2 + np.minimum(left[:, :-2], MAX_MARGIN) + np.minimum(right[:, 2:], MAX_MARGIN)
        widths = np.where(edge & mask, w, widths)
    return widths


def cpbd(gray: np.ndarray) -> float:
    """CPBD of a gray image (float, 0-255): the share of edges, in 64-px blocks that have edges,
    whose width a viewer would not see as blurred (higher = sharper)."""
    image = gray.astype(np.float64)
    canny_edges = canny(image)
    widths = edge_widths(sobel(image), image)
    hist = np.zeros(101)
    for i in range(image.shape[0] // BLOCK_HEIGHT):
        for j in range(image.shape[1] // BLOCK_WIDTH):
            rows = slice(BLOCK_HEIGHT * i, BLOCK_HEIGHT * (i + 1))
            cols = slice(BLOCK_WIDTH * j, BLOCK_WIDTH * (j + 1))
            if np.count_nonzero(canny_edges[rows, cols]) <= BLOCK_HEIGHT * BLOCK_WIDTH * THRESHOLD:
                continue
            block = widths[rows, cols]
            w = block[block != 0]
            jnb = WIDTH_JNB[int(np.max(image[rows, cols]) - np.min(image[rows, cols]))]
            p_blur = 1 - np.exp(-(np.abs(w / jnb) ** BETA))
            hist += np.bincount(np.round(p_blur * 100).astype(int), minlength=101)
    total = hist.sum()
    return float(np.sum(hist[:64] / total)) if total > 0 else 0.0
