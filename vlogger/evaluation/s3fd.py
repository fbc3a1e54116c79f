"""S3FD (Zhang et al. 2017) as joonson/syncnet_python runs it, for LSE's `reference` mode.

The module names and their order (`vgg`, `L2Norm3_3`, `L2Norm4_3`, `L2Norm5_3`, `extras`, `loc`,
`conf`) fix the state-dict keys, so the official `sfd_face.pth` loads with `strict=True` (zoo name
`s3fd_face`). Detection follows syncnet_python's `detectors/s3fd`: RGB frame scaled by 0.25
(bilinear), mean (123, 117, 104) subtracted per RGB channel, max-out background on the first head,
priors with steps 4..128 and sizes 16..512, box variances (0.1, 0.2), NMS at 0.3 per image and 0.1
over the kept boxes, confidence above 0.9. torchvision (its NMS) is not installed here, so the
greedy NMS is a few lines of numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlogger.zoo import resolve

WEIGHTS = "s3fd_face"
MEAN_RGB = (123.0, 117.0, 104.0)
STEPS = (4, 8, 16, 32, 64, 128)
MIN_SIZES = (16, 32, 64, 128, 256, 512)
VARIANCES = (0.1, 0.2)

# VGG16 to conv5_3 (ceil_mode on the third pool), then fc6 (dilated 3x3) and fc7 as convolutions; "M" = 2x2 pool
_VGG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512, "M"]
_TAPS = (16, 23, 30)  # vgg indices after conv3_3, conv4_3, conv5_3 (+ ReLU): where the L2-normalised heads read


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (`weight`)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight[None, :, None, None] * x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


def _vgg() -> nn.ModuleList:
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG:
        if v in ("M", "C"):
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=v == "C"))
        else:
            layers += [nn.Conv2d(cin, v, 3, 1, padding=1), nn.ReLU(inplace=True)]
            cin = v
    layers += [nn.Conv2d(512, 1024, 3, 1, padding=6, dilation=6), nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(1024, 1024, 1, 1), nn.ReLU(inplace=True)]
    return nn.ModuleList(layers)


class S3FD(nn.Module):
    """Single-shot scale-invariant face detector: six heads on strides 4..128."""

    def __init__(self) -> None:
        super().__init__()
        self.vgg = _vgg()
        self.L2Norm3_3 = L2Norm(256, 10)
        self.L2Norm4_3 = L2Norm(512, 8)
        self.L2Norm5_3 = L2Norm(512, 5)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1),
                nn.Conv2d(256, 512, 3, 2, 1),
                nn.Conv2d(512, 128, 1),
                nn.Conv2d(128, 256, 3, 2, 1),
            ]
        )
        source_channels = (256, 512, 512, 1024, 512, 256)
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, 1) for c in source_channels])
        # the first head scores 3 background classes and 1 face (max-out background, S3FD section 3.3)
        self.conf = nn.ModuleList([nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, 1) for i, c in enumerate(source_channels)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """(N, 3, H, W) mean-subtracted RGB -> box offsets (N, P, 4), face probability (N, P), feature-map sizes."""
        sources, start = [], 0
        for tap, norm in zip(_TAPS, (self.L2Norm3_3, self.L2Norm4_3, self.L2Norm5_3), strict=True):
            for layer in self.vgg[start:tap]:
                x = layer(x)
            sources.append(norm(x))
            start = tap
        for layer in self.vgg[start:]:
            x = layer(x)
        sources.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if k % 2 == 1:
                sources.append(x)
        locs, logits = [], []
        for i, (src, loc, conf) in enumerate(zip(sources, self.loc, self.conf, strict=True)):
            c = conf(src)
            if i == 0:
                c = torch.cat([c[:, :3].max(1, keepdim=True).values, c[:, 3:]], 1)
            locs.append(loc(src).permute(0, 2, 3, 1).reshape(len(x), -1, 4))
            logits.append(c.permute(0, 2, 3, 1).reshape(len(x), -1, 2))
        face = torch.cat(logits, 1).softmax(-1)[..., 1]
        return torch.cat(locs, 1), face, [tuple(s.shape[2:]) for s in sources]


def priors(image_hw: tuple[int, int], maps: list[tuple[int, int]]) -> torch.Tensor:
    """(P, 4) prior boxes cx, cy, w, h relative to the image, row by row per feature map."""
    h, w = image_hw
    out = []
    for (fh, fw), step, size in zip(maps, STEPS, MIN_SIZES, strict=True):
        cy, cx = torch.meshgrid((torch.arange(fh) + 0.5) * step / h, (torch.arange(fw) + 0.5) * step / w, indexing="ij")
        wh = torch.tensor([size / w, size / h]).expand(fh * fw, 2)
        out.append(torch.cat([cx.reshape(-1, 1), cy.reshape(-1, 1), wh], 1))
    return torch.cat(out)


def decode(loc: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(P, 4) x0, y0, x1, y1 relative boxes from offsets and priors (SSD's encoding)."""
    centre = prior[:, :2] + loc[:, :2] * VARIANCES[0] * prior[:, 2:]
    size = prior[:, 2:] * torch.exp(loc[:, 2:] * VARIANCES[1])
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, overlap: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first (IoU without the +1 pixel)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        lo, hi = np.maximum(boxes[i, :2], boxes[rest, :2]), np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        order = rest[inter / (area[i] + area[rest] - inter) <= overlap]
    return np.array(keep, dtype=np.intp)


@torch.no_grad()
def detect_faces(model: S3FD, frame_rgb: np.ndarray, scale: float = 0.25, conf_th: float = 0.9) -> np.ndarray:
    """(N, 5) x0, y0, x1, y1 (pixels of `frame_rgb`), score: syncnet_python's `detect_faces` at one scale."""
    h, w = frame_rgb.shape[:2]
    small = cv2.resize(frame_rgb, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    x = torch.from_numpy(small - np.float32(MEAN_RGB)).permute(2, 0, 1)[None]
    loc, face, maps = model(x)
    boxes = decode(loc[0], priors(small.shape[:2], maps)).numpy() * np.array([w, h, w, h])
    scores = face[0].numpy()
    cand = np.flatnonzero(scores > 0.05)  # the original's Detect: conf_thresh 0.05, NMS 0.3 (top 750) ...
    cand = cand[nms(boxes[cand], scores[cand], 0.3)][:750]
    cand = cand[scores[cand] > conf_th]  # ... then detect_faces: above conf_th, NMS 0.1
    cand = cand[nms(boxes[cand], scores[cand], 0.1)]
    return np.concatenate([boxes[cand], scores[cand, None]], 1)


def load_s3fd(path: str | Path | None = None) -> S3FD:
    """S3FD with the official `sfd_face.pth` weights (from the zoo unless `path` is given), in eval mode.

    Raises `vlogger.zoo.MissingWeights`, naming the fetch command, when the zoo has no copy."""
    path = resolve(WEIGHTS) if path is None else path
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected an S3FD state dict (sfd_face.pth), got {type(state).__name__}")
    model = S3FD()
    model.load_state_dict(state, strict=True)
    return model.requires_grad_(False).eval()
