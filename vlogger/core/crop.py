"""A square head-and-shoulders crop that is steady over the clip."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d


def crop_boxes(
    face: np.ndarray,
    fps: float,
    scale: float,
    shift_down: float,
    smooth_seconds: float,
    frame_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Per-frame square boxes (T, 3) = (x0, y0, side) in source pixels.

    The side is fixed per clip (median face height * scale) and the centre is low-passed
    with a Gaussian of `smooth_seconds`, so the crop follows the head without jitter.
    With `frame_size` = (w, h) the box is kept inside the frame (side at most the shorter
    frame side, centre clamped), so tight source crops give no black borders.
    """
    lo, hi = np.nanmin(face[..., :2], axis=1), np.nanmax(face[..., :2], axis=1)
    centre = (lo + hi) / 2
    height = np.median(hi[:, 1] - lo[:, 1])
    centre[:, 1] += shift_down * height
    centre = gaussian_filter1d(centre, sigma=max(smooth_seconds * fps, 1e-3), axis=0, mode="nearest")
    side = float(height * scale)
    if frame_size is not None:
        side = min(side, float(min(frame_size)))
        for axis, extent in enumerate(frame_size):
            centre[:, axis] = np.clip(centre[:, axis], side / 2, extent - side / 2)
    return np.concatenate([centre - side / 2, np.full((len(face), 1), side)], axis=1).astype(np.float32)


def crop_frame(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut the box out of the frame (black outside the frame) and resize it to size x size."""
    x0, y0, side = (round(v) for v in box)
    h, w = frame.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        x0, y0 = x0 + pad, y0 + pad
    region = frame[y0 : y0 + side, x0 : x0 + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(region, (size, size), interpolation=interp)


def to_crop_coords(points: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Map (T, K, >=2) source-pixel points into crop pixels; z (index 2) is scaled alike."""
    out = points.copy()
    s = (size / boxes[:, 2])[:, None]
    out[..., 0] = (points[..., 0] - boxes[:, None, 0]) * s
    out[..., 1] = (points[..., 1] - boxes[:, None, 1]) * s
    if points.shape[-1] > 2:
        out[..., 2] = points[..., 2] * s
    return out
