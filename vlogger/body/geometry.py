"""Batched rigid geometry in torch: similarity alignment and the continuous 6D rotation form.

Written on torch (not scipy) so the same code runs batched over frames on CPU in
preprocessing and on the GPU in training and rendering.
"""

from __future__ import annotations

import torch


def similarity_align(src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None):
    """Least-squares similarity per batch item (Umeyama 1991): dst ≈ s · R @ src + t.

    src, dst: (B, N, 3); weights: (N,) or (B, N). Returns s (B,), R (B, 3, 3), t (B, 3).
    """
    w = torch.ones(src.shape[:2], dtype=src.dtype, device=src.device) if weights is None else weights
    w = (w.expand(src.shape[:2]) / w.expand(src.shape[:2]).sum(-1, keepdim=True)).unsqueeze(-1)
    mu_s, mu_d = (w * src).sum(1), (w * dst).sum(1)
    a, b = src - mu_s[:, None], dst - mu_d[:, None]
    cov = (w * b).transpose(1, 2) @ a  # (B, 3, 3) = Σ w b aᵀ
    u, sig, vt = torch.linalg.svd(cov)
    d = torch.ones_like(sig)
    d[:, 2] = torch.sign(torch.linalg.det(u @ vt))
    rot = u @ torch.diag_embed(d) @ vt
    var_s = (w * a.pow(2)).sum((1, 2))
    scale = (sig * d).sum(-1) / var_s.clamp_min(1e-12)
    trans = mu_d - scale[:, None] * (rot @ mu_s[..., None]).squeeze(-1)
    return scale, rot, trans


def apply_similarity(points: torch.Tensor, scale: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor):
    """s · R @ X + t for points (B, N, 3)."""
    return scale[:, None, None] * points @ rot.transpose(1, 2) + trans[:, None, :]


def invert_similarity(points: torch.Tensor, scale: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor):
    """Rᵀ (Y - t) / s: image points back into the canonical frame."""
    return (points - trans[:, None, :]) @ rot / scale[:, None, None]


def matrix_to_rot6d(rot: torch.Tensor) -> torch.Tensor:
    """(…, 3, 3) -> (…, 6): the first two columns, the continuous form of Zhou et al. 2019."""
    return rot[..., :, :2].transpose(-1, -2).reshape(*rot.shape[:-2], 6)


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(…, 6) -> (…, 3, 3) by Gram-Schmidt; any 6-vector maps to a rotation."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotation_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between rotations a and b (…, 3, 3), in degrees."""
    cos = ((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


def euler_to_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Rotation from yaw (about y), pitch (about x), roll (about z), radians: R = Ry Rx Rz."""
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    o, z = torch.ones_like(yaw), torch.zeros_like(yaw)
    ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).reshape(*yaw.shape, 3, 3)
    rx = torch.stack([o, z, z, z, cp, -sp, z, sp, cp], -1).reshape(*yaw.shape, 3, 3)
    rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).reshape(*yaw.shape, 3, 3)
    return ry @ rx @ rz
