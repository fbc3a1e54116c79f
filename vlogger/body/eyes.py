"""Gaze and blinks from the tracked face: the eye behaviour stage 1 predicts and stage 2 is shown.

`gaze` (T, 2, 2): per eye (the person's left, right) yaw and pitch in radians relative to the
head. The iris centre's offset from the eye-corner midpoint, in the head's canonical frame (the
fit's rotation, scale and translation undone), is read as a point on an eyeball of
`EYEBALL_RADIUS` eye widths; yaw > 0 towards canonical +x (image right for a frontal face),
pitch > 0 down. `eyelid` (T, 2): lid gap over eye width per eye (`landmarks.eye_aperture`).
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger.body.geometry import invert_similarity
from vlogger.core import landmarks

EYEBALL_RADIUS = 0.42  # eyeball radius (~12 mm) over the eye's corner-to-corner width (~28 mm)
IRIS_RADIUS = 0.2  # iris radius (~5.8 mm) over the eye width


def eye_params(lmk: np.ndarray, fmt: str, params: dict) -> dict:
    """`gaze` and `eyelid` of a clip: landmarks (T, K, 3) in crop pixels, `params` its head fit."""
    if not landmarks.has_iris(fmt):
        raise ValueError(f"gaze needs iris landmarks, which {fmt} lacks")
    pose = [torch.as_tensor(np.asarray(params[k]), dtype=torch.float32) for k in ("scale", "rotation", "translation")]
    canon = invert_similarity(torch.as_tensor(lmk, dtype=torch.float32), *pose).numpy()
    corners = landmarks.point(canon, fmt, "eye_corners")  # (T, 2, 2, 3)
    width = np.linalg.norm(corners[..., 0, :] - corners[..., 1, :], axis=-1)
    offset = (landmarks.point(canon, fmt, "iris") - corners.mean(-2))[..., :2]
    gaze = np.arcsin(np.clip(offset / (EYEBALL_RADIUS * width[..., None]), -1, 1))
    return {"gaze": gaze.astype(np.float32), "eyelid": landmarks.eye_aperture(canon, fmt).astype(np.float32)}


def iris_pixels(corners: torch.Tensor, rotation: torch.Tensor, gaze: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) iris centre x, y and radius in pixels per eye, for the renderer: eye corners
    (B, 2, 2, 3) in pixels of the posed mesh, head rotation (B, 3, 3), gaze (B, 2, 2)."""
    width = (corners[..., 0, :] - corners[..., 1, :]).norm(dim=-1)  # 3D: the fit's scale, not foreshortened
    sin = torch.sin(gaze)
    offset = torch.cat([sin, torch.zeros_like(sin[..., :1])], -1) * (EYEBALL_RADIUS * width[..., None])
    centre = corners.mean(-2) + torch.einsum("bij,bej->bei", rotation, offset)
    return torch.cat([centre[..., :2], IRIS_RADIUS * width[..., None]], -1)
