"""Face-mesh sequences from known parameters, for checking that fitting recovers them."""

from __future__ import annotations

import torch

from vlogger.body.facemesh import FaceBasis, expression_shape
from vlogger.body.geometry import apply_similarity, euler_to_matrix


def synthetic_clip(basis: FaceBasis, frames: int = 100, seed: int = 0):
    """Known parameters: expressions drawn at the basis' spread, head turning ±30° yaw."""
    g = torch.Generator().manual_seed(seed)
    expr = torch.randn(frames, basis.n_components, generator=g) * torch.as_tensor(basis.stddev)
    identity = torch.as_tensor(basis.mean) + 0.003 * torch.randn(478, 3, generator=g)
    u = torch.linspace(0, 1, frames)
    rot = euler_to_matrix(torch.deg2rad(60 * u - 30), torch.deg2rad(15 * torch.sin(6 * u)), torch.deg2rad(10 * u))
    scale = 100 + 10 * torch.rand(frames, generator=g)
    trans = torch.stack([128 + 5 * torch.randn(frames, generator=g), 120 + 5 * u, torch.zeros(frames)], 1)
    verts = apply_similarity(expression_shape(identity, expr, basis), scale, rot, trans)
    return verts, expr, rot, scale
