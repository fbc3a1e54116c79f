"""Hands in the parameters and in the controls: the tracked 21 points per hand, their compact
wrist-relative form, and the skeleton proxy the renderer draws.

Params keys (`vlogger.body.params`): `hands` (T, 2, 21, 3) crop pixels, the person's left then
right hand, mediapipe's point order (z relative to the wrist, same scale as x), 0 where unseen;
`hand_visible` (T, 2, 21) 1 where the point was seen inside the frame.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vlogger.core.hands import HAND_BONES, MIDDLE_MCP, PALM, WRIST

FINGER_WIDTH = 0.22  # bone quad width over the palm length (wrist to middle knuckle)
# a flat open right hand seen from the palm side, palm lengths, x to the thumb, y to the fingertips
_TEMPLATE = np.array([
    [0, 0], [0.35, -0.15], [0.6, -0.4], [0.75, -0.65], [0.85, -0.9],
    [0.3, -0.95], [0.38, -1.35], [0.42, -1.6], [0.45, -1.8],
    [0.0, -1.0], [0.0, -1.45], [0.0, -1.72], [0.0, -1.95],
    [-0.25, -0.95], [-0.3, -1.35], [-0.32, -1.6], [-0.34, -1.8],
    [-0.45, -0.85], [-0.55, -1.15], [-0.6, -1.35], [-0.65, -1.5],
], np.float32)  # fmt: skip


def hand_params(hands: np.ndarray) -> dict:
    """`hands` and `hand_visible` params from a (T, 2, 21, 4) track in crop pixels."""
    return {"hands": np.nan_to_num(hands[..., :3]).astype(np.float32), "hand_visible": hands[..., 3].astype(np.float32)}


def hand_seen(visible: np.ndarray) -> np.ndarray:
    """(..., 2) per hand: its wrist and middle knuckle were seen, so its place, size and shape
    (`hand_pose`) are known."""
    return (visible[..., WRIST] > 0) & (visible[..., MIDDLE_MCP] > 0)


def palm_length(hands: np.ndarray) -> np.ndarray:
    """(..., 2) wrist to middle knuckle in the image plane, the hand's size."""
    return np.linalg.norm(hands[..., MIDDLE_MCP, :2] - hands[..., WRIST, :2], axis=-1)


def hand_pose(hands: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 3) wrist-relative points over the palm length, 0 for unseen hands: the
    position- and size-free hand shape (the input a learned hand basis compresses)."""
    rel = hands - hands[..., WRIST : WRIST + 1, :]
    palm = palm_length(hands)[..., None, None]
    seen = hand_seen(visible)
    return np.where(seen[..., None, None], rel / np.maximum(palm, 1e-6), 0).astype(np.float32)


N_VERTS = 4 * len(HAND_BONES) + len(PALM)  # per hand: a quad per bone, then the palm polygon
_BONE_FACES = torch.arange(4 * len(HAND_BONES)).view(-1, 1, 4)[:, :, [[0, 1, 2], [0, 2, 3]]].reshape(-1, 3)
_PALM_FACES = torch.tensor([[0, k, k + 1] for k in range(1, len(PALM) - 1)]) + 4 * len(HAND_BONES)
HAND_FACES = torch.cat([_PALM_FACES, _BONE_FACES])  # (F, 3) per hand, palm first: fingers win ties


def hand_proxy(points: Tensor, visible: Tensor, depth: Tensor) -> Tensor:
    """(B, 2 * N_VERTS, 3) vertices of both hands' proxies from points (B, 2, 21, 3) in pixels
    and visibility (B, 2, 21): a quad per bone whose two points were seen, the palm polygon where
    all its points were; the rest collapses to a point (no pixels). z = `depth` (B, 2) plus the
    points' own z, so fingers hide each other as tracked."""
    bones = torch.tensor(HAND_BONES, device=points.device)
    a, b = points[:, :, bones[:, 0], :2], points[:, :, bones[:, 1], :2]
    palm_len = (points[:, :, MIDDLE_MCP, :2] - points[:, :, WRIST, :2]).norm(dim=-1).clamp_min(1e-6)
    d = b - a
    n = torch.stack([-d[..., 1], d[..., 0]], -1) / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    n = n * (FINGER_WIDTH / 2 * palm_len)[..., None, None]
    quads = torch.stack([a - n, a + n, b + n, b - n], 3)  # (B, 2, bones, 4, 2)
    ok = (visible[:, :, bones[:, 0]] > 0) & (visible[:, :, bones[:, 1]] > 0)
    quads = torch.where(ok[..., None, None], quads, a[..., None, :])
    z = points[..., 2] + depth[..., None]
    zq = torch.stack([z[:, :, bones[:, 0]], z[:, :, bones[:, 0]], z[:, :, bones[:, 1]], z[:, :, bones[:, 1]]], -1)
    palm = list(PALM)
    palm_ok = (visible[:, :, palm] > 0).all(-1)
    palm_xy = torch.where(palm_ok[..., None, None], points[:, :, palm, :2], points[:, :, :1, :2])
    xy = torch.cat([quads.flatten(2, 3), palm_xy], 2)
    zz = torch.cat([zq.flatten(2), z[:, :, palm]], 2)
    return torch.cat([xy, zz[..., None]], -1).flatten(1, 2)


def _canonical() -> Tensor:
    """(2 * N_VERTS, 3) canonical coordinates in [0, 1]: the proxy of the template hand (mirrored
    for the left), x and y over the hand's box, z 0.55 for the left hand and 0.35 for the right."""
    pts = torch.as_tensor(_TEMPLATE)
    out = []
    for side, z in ((-1.0, 0.55), (1.0, 0.35)):
        p = torch.cat([pts * torch.tensor([side, 1.0]), torch.zeros(21, 1)], -1)
        v = hand_proxy(p.expand(1, 2, 21, 3), torch.ones(1, 2, 21), torch.zeros(1, 2))[0, :N_VERTS, :2]
        xy = (v - torch.tensor([-1.2, -2.2])) / 2.4
        out.append(torch.cat([xy.clamp(0, 1), torch.full((N_VERTS, 1), z)], -1))
    return torch.cat(out)


HAND_CANONICAL = _canonical()
