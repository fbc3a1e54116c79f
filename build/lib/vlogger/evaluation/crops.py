"""Face crops the face metrics read, cut from tracked videos by the protocol's geometry."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import median_filter

from vlogger.evaluation.tracks import TrackedVideo


def syncnet_crops(v: TrackedVideo, size: int = 224) -> np.ndarray:
    """SyncNet's crop: median-smoothed face box of half side s, square [cx +- 1.4 s] x [cy - s, cy + 1.8 s],
    grey (110) outside the frame. The box here is the face-mesh box, not S3FD's, which is the one known
    difference from the original pipeline (recorded in the protocol)."""
    lo, hi = v.lmk[..., :2].min(axis=1), v.lmk[..., :2].max(axis=1)
    box = median_filter(np.concatenate([lo, hi], axis=1), size=(5, 1), mode="nearest")
    out = np.empty((len(v.frames), size, size, 3), np.uint8)
    for t, (frame, (x0, y0, x1, y1)) in enumerate(zip(v.frames, box, strict=True)):
        s = max(x1 - x0, y1 - y0) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        src = np.float32([[cx - 1.4 * s, cy - s], [cx + 1.4 * s, cy - s], [cx - 1.4 * s, cy + 1.8 * s]])
        dst = np.float32([[0, 0], [size, 0], [0, size]])
        m = cv2.getAffineTransform(src, dst)
        out[t] = cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(110, 110, 110))
    return out
