"""Temporal outpainting: where the windows of a long sequence start."""

from __future__ import annotations


def window_starts(n_frames: int, window: int, overlap: int) -> list[int]:
    """Start frame of every window; the last one may run past the end (its audio is padded)."""
    stride = window - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the window {window}")
    starts = [0]
    while starts[-1] + window < n_frames:
        starts.append(starts[-1] + stride)
    return starts
