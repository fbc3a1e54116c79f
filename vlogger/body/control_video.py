"""Per-frame parameters -> the three controls as pictures, for `vlogger render`, stage-1 output
videos and stage 2's conditioning: chunked over frames so any length fits in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from vlogger.body.fitting import MeshModel
from vlogger.body.render import ControlRenderer, Controls, controls_to_rgb
from vlogger.core.video import decode_mp4_bytes


def scaled(points: torch.Tensor, src_size: int, size: int) -> torch.Tensor:
    """Crop-pixel positions (any size) into pixels of a size x size render."""
    return torch.as_tensor(points, dtype=torch.float32) * (size / src_size)


class ClipRenderer:
    """Renders a clip's parameters against one reference (crop image + its one-frame params)."""

    def __init__(self, mesh: MeshModel, ref_image: np.ndarray, ref_params: dict, size: int, device: str = "cpu"):
        self.mesh, self.size, self.device = mesh, size, device
        self.renderer = ControlRenderer(mesh.faces, mesh.labels, mesh.canonical, size)
        src = int(ref_params["size"])
        image = torch.as_tensor(ref_image, dtype=torch.float32, device=device).permute(2, 0, 1)[None] / 255
        verts = scaled(mesh.vertices(ref_params)[:1], src, ref_image.shape[0]).to(device)
        body = scaled(ref_params["body"][:1], src, ref_image.shape[0]).to(device)
        vis = torch.as_tensor(ref_params["body_visible"][:1], dtype=torch.float32, device=device)
        self.reference = self.renderer.reference(image, verts, body, vis)

    def controls(self, params: dict, src_size: int, chunk: int = 50) -> Iterator[Controls]:
        """Controls for every frame of `params` (crop pixels of `src_size`), `chunk` frames at a time."""
        verts = self.mesh.vertices(params)
        body = torch.as_tensor(params["body"], dtype=torch.float32)
        vis = torch.as_tensor(params["body_visible"], dtype=torch.float32)
        for s in range(0, len(verts), chunk):
            v = scaled(verts[s : s + chunk], src_size, self.size).to(self.device)
            j = scaled(body[s : s + chunk], src_size, self.size).to(self.device)
            yield self.renderer(v, self.reference, j, vis[s : s + chunk].to(self.device))

    def strips(self, params: dict, src_size: int) -> Iterator[np.ndarray]:
        """(S, 3S, 3) uint8 per frame: semantic | coordinates | warped reference."""
        for c in self.controls(params, src_size):
            yield from controls_to_rgb(c).cpu().numpy()


def params_slice(params: dict, start: int, stop: int) -> dict:
    """Frames [start, stop) of a clip's params (per-frame arrays sliced, per-clip values kept)."""
    n = len(params["expression"])
    return {k: (v[start:stop] if np.ndim(v) and len(v) == n else v) for k, v in params.items()}


def render_shard_clip(sample: dict, params: dict, mesh: MeshModel, size: int, ref_index: int = 0) -> np.ndarray:
    """(T, S, 4S, 3) uint8 for one shard clip: the frame | semantic | coordinates | warped
    reference (warped from frame `ref_index` to every frame's fitted pose); `params` is the
    sample's params.npz, already read."""
    import cv2

    frames = decode_mp4_bytes(sample["mp4"])
    src = int(params["size"])
    clip = ClipRenderer(mesh, frames[ref_index], params_slice(params, ref_index, ref_index + 1), size)
    out = []
    for frame, strip in zip(frames, clip.strips(params, src), strict=True):
        small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        out.append(np.concatenate([small, strip], axis=1))
    return np.stack(out)
