"""Where one video becomes several clips: shot cuts, lost tracking, min/max length."""

from __future__ import annotations

import itertools

import cv2
import numpy as np


def color_histogram(frame: np.ndarray) -> np.ndarray:
    """Normalised hue/saturation histogram of a small copy of the frame (shot-cut signature)."""
    small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).reshape(-1)
    return hist / max(float(hist.sum()), 1.0)


def shot_cuts(hists: np.ndarray, threshold: float) -> np.ndarray:
    """Indices k where a new shot starts at frame k (1 - histogram correlation > threshold)."""
    if len(hists) < 2:
        return np.zeros(0, np.int64)
    a, b = hists[:-1], hists[1:]
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    corr = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.nonzero(1.0 - corr > threshold)[0] + 1


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True values."""
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.nonzero(np.diff(padded.astype(np.int8)))[0]
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def tracked_spans(found: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Spans of tracked frames, bridging gaps of at most max_gap missing frames."""
    bridged = found.copy()
    for s, e in runs(~found):
        if e - s <= max_gap and s > 0 and e < len(found):
            bridged[s:e] = True
    return [(s, e) for s, e in runs(bridged) if found[s:e].any()]


def split_clips(
    n_frames: int, cuts: np.ndarray, found: np.ndarray, min_len: int, max_len: int, max_gap: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
    """Clip spans [start, end) and dropped spans with the reason.

    Shots are split at cuts, then at tracking gaps longer than max_gap; spans shorter than
    min_len are dropped, longer than max_len cut into equal pieces no longer than max_len.
    """
    bounds = [0, *cuts.tolist(), n_frames]
    clips: list[tuple[int, int]] = []
    dropped: list[tuple[int, int, str]] = []
    for s0, e0 in itertools.pairwise(bounds):
        for s, e in tracked_spans(found[s0:e0], max_gap):
            s, e = s + s0, e + s0
            if e - s < min_len:
                dropped.append((s, e, f"clip too short: {e - s} frames < {min_len}"))
                continue
            pieces = -(-(e - s) // max_len)
            step = (e - s) // pieces
            clips.extend((s + i * step, s + (i + 1) * step) for i in range(pieces))
    return clips, dropped
