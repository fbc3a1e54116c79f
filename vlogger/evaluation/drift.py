"""Drift over long videos: does the face stay the person, and the colour, of the first second?

Users' most common complaint about long generation is a face that slowly turns into someone else or
changes tint. Per block of `block_seconds`, against the first `reference_seconds`:

- identity: mean cosine of the block's frames to the mean embedding of the first second's frames
  (under one of identity's backbones, named in the keys: `drift_csim_*` or `drift_identity_dlib_*`);
- colour: CIEDE2000 between the mean CIELAB colour of the face (inside the face-mesh hull) over the
  block's frames and over the first second's frames.

Each video's per-block values go to its row (and the report's plot over time); its slopes (least
squares over block centres, per minute) are averaged over videos with at least two blocks.
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from vlogger.core.errors import UsageError
from vlogger.core.video import scaled_size
from vlogger.evaluation.identity import IdentityBackbone, make_backbone
from vlogger.evaluation.metric import EvalVideo, Measured, Needs, SampledFrames, VideoMetric
from vlogger.evaluation.tracks import VideoSource

KEEP_SIDE = 320  # kept frames are shrunk to this longest side: memory grows with the blocks, not the pixels
SCORE_NAMES = {"arcface": "csim", "dlib": "identity_dlib"}


def block_indices(n_frames: int, fps: float, cfg: dict) -> list[np.ndarray]:
    """Frame indices of the reference (first second) and of each whole block after it, `frames_per_block` each."""
    k = cfg["frames_per_block"]
    ref_end, block = round(cfg["reference_seconds"] * fps), round(cfg["block_seconds"] * fps)
    spans = [(0, min(ref_end, n_frames))] + [(s, s + block) for s in range(0, n_frames - block + 1, block)]
    return [np.linspace(a, b - 1, min(k, b - a)).round().astype(int) for a, b in spans]


def face_lab(frame: np.ndarray, lmk: np.ndarray) -> np.ndarray:
    """Mean CIELAB colour (3,) of the pixels inside the convex hull of the face landmarks."""
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(lmk[:, :2].round().astype(np.int32)), 1)
    pixels = frame[mask.astype(bool)]
    return rgb2lab(pixels[None].astype(np.float64) / 255)[0].mean(0)


def slope_per_minute(times_s: np.ndarray, values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(times_s[ok] / 60, values[ok], 1)[0])


def drift_profile(
    frames: dict[int, np.ndarray], lmk: np.ndarray, scale: float, blocks: list[np.ndarray], backbone: IdentityBackbone
) -> dict[str, np.ndarray]:
    """Per-block identity cosine and colour difference against block 0 (the reference), from kept frames
    (index -> RGB, shrunk by `scale` relative to the landmarks' frame)."""
    emb = {i: e for i, e in zip(frames, backbone.embed(np.stack(list(frames.values()))), strict=True)}
    lab = {i: face_lab(f, lmk[i] * scale) for i, f in frames.items()}
    ref_emb = np.nanmean([emb[i] for i in blocks[0]], axis=0)
    ref_emb /= np.linalg.norm(ref_emb)
    ref_lab = np.mean([lab[i] for i in blocks[0]], axis=0)
    identity, colour = [], []
    for idx in blocks[1:]:
        cos = np.array([emb[i] @ ref_emb for i in idx])
        identity.append(np.nanmean(cos) if (~np.isnan(cos)).any() else np.nan)
        colour.append(float(deltaE_ciede2000(ref_lab, np.mean([lab[i] for i in idx], axis=0))))
    return {"identity": np.array(identity), "colour": np.array(colour)}


class ShrunkFrames(SampledFrames):
    """SampledFrames that keeps its frames shrunk to at most KEEP_SIDE (INTER_AREA)."""

    def __init__(self, source: VideoSource, indices) -> None:
        super().__init__(indices)
        w, h = source.size
        self.size = scaled_size(w, h, KEEP_SIDE)
        self.scale = self.size[0] / w

    def add(self, start: int, gen: np.ndarray | None, ref: np.ndarray | None) -> None:
        if gen is not None:
            small = np.stack([cv2.resize(f, self.size, interpolation=cv2.INTER_AREA) for f in gen])
            super().add(start, small, None)


class Drift(VideoMetric):
    """Identity and colour drift of each generated video against its own first second (no reference needed)."""

    name = "drift"
    needs = Needs()
    scores: ClassVar[dict[str, bool | None]] = {
        "drift_csim_slope": True,
        "drift_identity_dlib_slope": True,
        "drift_colour_slope": False,
    }

    def __init__(self, backbone: IdentityBackbone, cfg: dict, fps: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.backbone, self.cfg, self.fps = backbone, cfg, fps
        self.key = f"drift_{SCORE_NAMES[backbone.name]}"
        for name in ("identity_slope_sum", "colour_slope_sum", "videos"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @classmethod
    def from_protocol(cls, protocol: dict) -> Drift:
        cfg = protocol["drift"]
        if cfg["backbone"] not in SCORE_NAMES:
            raise UsageError(f"drift.backbone must be one of {sorted(SCORE_NAMES)}, got {cfg['backbone']!r}")
        return cls(make_backbone(cfg["backbone"]), cfg, protocol["video"]["fps"])

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> ShrunkFrames:
        return ShrunkFrames(gen, np.concatenate(block_indices(gen.n_frames, self.fps, self.cfg)))

    def measure(self, video: EvalVideo, frames: ShrunkFrames) -> Measured:
        blocks = block_indices(video.gen.n_frames, self.fps, self.cfg)
        if len(blocks) < 3:
            return Measured({"drift_skipped": f"shorter than two blocks of {self.cfg['block_seconds']} s"})
        kept = {i: frames.kept[0][i] for i in np.concatenate(blocks)}
        prof = drift_profile(kept, video.gen.lmk, frames.scale, blocks, self.backbone)
        block = self.cfg["block_seconds"]
        times = (np.arange(len(blocks) - 1) + 0.5) * block
        slopes = (slope_per_minute(times, prof["identity"]), slope_per_minute(times, prof["colour"]))
        row = {
            "drift_block_seconds": block,
            f"{self.key}_blocks": prof["identity"].tolist(),
            "drift_colour_blocks": prof["colour"].tolist(),
            f"{self.key}_slope": slopes[0],
            "drift_colour_slope": slopes[1],
        }
        return Measured(row, slopes)

    def update(self, measured: Measured) -> None:
        if measured.value is None or np.isnan(measured.value).any():
            return
        self.identity_slope_sum += measured.value[0]
        self.colour_slope_sum += measured.value[1]
        self.videos += 1

    def compute(self) -> dict[str, float]:
        if self.videos == 0:
            return {}
        n = self.videos
        return {
            f"{self.key}_slope": float(self.identity_slope_sum / n),
            "drift_colour_slope": float(self.colour_slope_sum / n),
        }
