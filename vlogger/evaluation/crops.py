"""Face crops the face metrics read, cut from tracked videos by the protocol's geometry."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
from scipy.ndimage import median_filter

from vlogger.evaluation.tracks import TrackedVideo


def syncnet_boxes(lmk: np.ndarray) -> np.ndarray:
    """(T, 4) x0, y0, x1, y1: the face-mesh box per frame, median-smoothed over 5 frames."""
    lo, hi = lmk[..., :2].min(axis=1), lmk[..., :2].max(axis=1)
    return median_filter(np.concatenate([lo, hi], axis=1), size=(5, 1), mode="nearest")


def syncnet_crops(frames: np.ndarray, boxes: np.ndarray, size: int = 224) -> np.ndarray:
    """SyncNet's crop of each frame: for a box of half side s, the square [cx +- 1.4 s] x
    [cy - s, cy + 1.8 s], grey (110) outside the frame. The box is the face-mesh box, not S3FD's,
    which is the one known difference from the original pipeline (recorded in the protocol)."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for t, (frame, (x0, y0, x1, y1)) in enumerate(zip(frames, boxes, strict=True)):
        s = max(x1 - x0, y1 - y0) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        src = np.float32([[cx - 1.4 * s, cy - s], [cx + 1.4 * s, cy - s], [cx - 1.4 * s, cy + 1.8 * s]])
        dst = np.float32([[0, 0], [size, 0], [0, size]])
        m = cv2.getAffineTransform(src, dst)
        out[t] = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(110, 110, 110))
    return out


def syncnet_crop_chunks(v: TrackedVideo, size: int = 224) -> Iterator[np.ndarray]:
    """The crops of a tracked video, decoded again chunk by chunk (its frames are not kept)."""
    boxes, start = syncnet_boxes(v.lmk), 0
    for chunk in v.source.chunks():
        yield syncnet_crops(chunk, boxes[start : start + len(chunk)], size)
        start += len(chunk)
