"""Per-frame parameters -> the three controls as pictures, for `vlogger render`, stage-1 output
videos and stage 2's conditioning: chunked over frames so any length fits in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from vlogger.body.eyes import iris_pixels
from vlogger.body.facemesh import N_POINTS
from vlogger.body.fitting import MeshModel
from vlogger.body.render import ControlRenderer, Controls, controls_to_rgb
from vlogger.core.landmarks import FORMATS
from vlogger.core.spec import LEGACY_PARTS
from vlogger.core.video import decode_mp4_bytes

# eye corners in the face mesh's vertex order (its vertices are mediapipe's landmarks); the
# SMPL-X mesh's eye vertices are not mapped yet, so its controls show no iris
_EYE_CORNERS = np.asarray(FORMATS["mediapipe478"]["eye_corners"])


def scaled(points: torch.Tensor, src_size: int, size: int) -> torch.Tensor:
    """Crop-pixel positions (any size) into pixels of a size x size render."""
    return torch.as_tensor(points, dtype=torch.float32) * (size / src_size)


class ClipRenderer:
    """Renders a clip's parameters against one reference (crop image + its one-frame params);
    with hands or eyes in `parts` (the data spec's) the controls draw them too."""

    def __init__(
        self,
        mesh: MeshModel,
        ref_image: np.ndarray,
        ref_params: dict,
        size: int,
        device: str = "cpu",
        parts: tuple[str, ...] = LEGACY_PARTS,
    ):
        self.mesh, self.size, self.device, self.parts = mesh, size, device, parts
        self.renderer = ControlRenderer(mesh.faces, mesh.labels, mesh.canonical, size, parts)
        src = int(ref_params["size"])
        image = torch.as_tensor(ref_image, dtype=torch.float32, device=device).permute(2, 0, 1)[None] / 255
        verts = scaled(mesh.vertices(ref_params)[:1], src, ref_image.shape[0]).to(device)
        body = scaled(ref_params["body"][:1], src, ref_image.shape[0]).to(device)
        vis = torch.as_tensor(ref_params["body_visible"][:1], dtype=torch.float32, device=device)
        hands = self._hands(ref_params, 0, 1, src, ref_image.shape[0])
        self.reference = self.renderer.reference(image, verts, body, vis, **hands)

    def _hands(self, params: dict, start: int, stop: int, src: int, size: int) -> dict:
        """The renderer's hand arguments for frames [start, stop), empty without hands."""
        if "hands" not in self.parts:
            return {}
        points = scaled(params["hands"][start:stop], src, size).to(self.device)
        seen = torch.as_tensor(params["hand_visible"][start:stop], dtype=torch.float32, device=self.device)
        return {"hands": points, "hand_visible": seen}

    def _iris(self, params: dict, verts: torch.Tensor, start: int, stop: int) -> dict:
        """The renderer's iris argument (verts already in output pixels), empty without eyes."""
        if "eyes" not in self.parts or verts.shape[1] != N_POINTS:
            return {}
        rot = torch.as_tensor(params["rotation"][start:stop], dtype=torch.float32, device=self.device)
        gaze = torch.as_tensor(params["gaze"][start:stop], dtype=torch.float32, device=self.device)
        return {"iris": iris_pixels(verts[:, _EYE_CORNERS], rot, gaze)}

    def controls(self, params: dict, src_size: int, chunk: int = 50) -> Iterator[Controls]:
        """Controls for every frame of `params` (crop pixels of `src_size`), `chunk` frames at a time."""
        verts = self.mesh.vertices(params)
        body = torch.as_tensor(params["body"], dtype=torch.float32)
        vis = torch.as_tensor(params["body_visible"], dtype=torch.float32)
        for s in range(0, len(verts), chunk):
            e = s + chunk
            v = scaled(verts[s:e], src_size, self.size).to(self.device)
            j = scaled(body[s:e], src_size, self.size).to(self.device)
            extra = self._hands(params, s, e, src_size, self.size) | self._iris(params, v, s, e)
            yield self.renderer(v, self.reference, j, vis[s:e].to(self.device), **extra)

    def strips(self, params: dict, src_size: int) -> Iterator[np.ndarray]:
        """(S, 3S, 3) uint8 per frame: semantic | coordinates | warped reference."""
        for c in self.controls(params, src_size):
            yield from controls_to_rgb(c).cpu().numpy()


def params_slice(params: dict, start: int, stop: int) -> dict:
    """Frames [start, stop) of a clip's params (per-frame arrays sliced, per-clip values kept)."""
    n = len(params["expression"])
    return {k: (v[start:stop] if np.ndim(v) and len(v) == n else v) for k, v in params.items()}


def render_shard_clip(
    sample: dict, params: dict, mesh: MeshModel, size: int, ref_index: int = 0, parts: tuple[str, ...] = LEGACY_PARTS
) -> np.ndarray:
    """(T, S, 4S, 3) uint8 for one shard clip: the frame | semantic | coordinates | warped
    reference (warped from frame `ref_index` to every frame's fitted pose); `params` is the
    sample's params.npz, already read; `parts` those of its shards' data spec to draw."""
    import cv2

    frames = decode_mp4_bytes(sample["mp4"])
    src = int(params["size"])
    clip = ClipRenderer(mesh, frames[ref_index], params_slice(params, ref_index, ref_index + 1), size, parts=parts)
    out = []
    for frame, strip in zip(frames, clip.strips(params, src), strict=True):
        small = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
        out.append(np.concatenate([small, strip], axis=1))
    return np.stack(out)
