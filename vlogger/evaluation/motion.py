"""Landmark- and pixel-based per-video scores: jitter, LME, expression diversity, head pose,
PSNR/SSIM. Each is a function of tracked videos; `VideoMean` turns any of them into a
torchmetrics Metric (sums, so it syncs under DDP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from vlogger.core import landmarks
from vlogger.evaluation.tracks import TrackedVideo


def _normalised(v: TrackedVideo) -> np.ndarray:
    """Landmarks in units of the clip's median face height (resolution-free)."""
    return v.lmk[..., :2].astype(np.float64) / float(np.median(landmarks.face_height(v.lmk, v.landmark_format)))


def jitter(v: TrackedVideo) -> float:
    """Mean jerk (third difference) of every landmark, face heights / frame^3 x 1000.
    A frozen video scores 0; tracking noise on a still face scores > 0."""
    x = _normalised(v)
    if len(x) < 4:
        return float("nan")
    return float(np.linalg.norm(np.diff(x, 3, axis=0), axis=-1).mean() * 1000)


def expression_diversity(v: TrackedVideo) -> float:
    """Temporal std of centred landmarks (translation and scale removed), x 100."""
    x = _normalised(v)
    x = x - x.mean(axis=1, keepdims=True)
    return float(x.std(axis=0).mean() * 100)


def head_angles(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees from the face-mesh geometry (no 3DMM needed)."""
    yaw = landmarks.yaw_degrees(lmk, fmt)
    v = landmarks.point(lmk, fmt, "chin") - landmarks.point(lmk, fmt, "forehead")
    pitch = np.degrees(np.arctan2(v[..., 2], np.abs(v[..., 1]) + 1e-6))
    e = landmarks.point(lmk, fmt, "cheek_left") - landmarks.point(lmk, fmt, "cheek_right")
    roll = np.degrees(np.arctan2(e[..., 1], e[..., 0]))
    return np.stack([yaw, pitch, roll], axis=-1)


def cpbd_sharpness(v: TrackedVideo, frames: int = 8) -> float:
    """CPBD (Narvekar & Karam 2011) on the gray frames, mean over `frames` spread over the video:
    probability that edges are not perceived as blurred (higher = sharper)."""
    import cpbd

    idx = np.linspace(0, len(v.frames) - 1, min(frames, len(v.frames))).astype(int)
    return float(np.mean([cpbd.compute(cv2.cvtColor(v.frames[i], cv2.COLOR_RGB2GRAY).astype(np.float64)) for i in idx]))


def _paired(gen: TrackedVideo, ref: TrackedVideo) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(gen.lmk), len(ref.lmk))
    return _normalised(gen)[:n], _normalised(ref)[:n]


def lip_landmark_error(gen: TrackedVideo, ref: TrackedVideo) -> float:
    """LME: mean distance of lip landmarks (each face centred on its lips), % of face height."""
    lips = landmarks.FORMATS[gen.landmark_format]["lips"]
    g, r = (x[:, lips] - x[:, lips].mean(axis=1, keepdims=True) for x in _paired(gen, ref))
    return float(np.linalg.norm(g - r, axis=-1).mean() * 100)


def head_pose_error(gen: TrackedVideo, ref: TrackedVideo) -> float:
    """Mean absolute yaw/pitch/roll difference in degrees over paired frames."""
    n = min(len(gen.lmk), len(ref.lmk))
    fmt = gen.landmark_format
    return float(np.abs(head_angles(gen.lmk[:n], fmt) - head_angles(ref.lmk[:n], fmt)).mean())


def _frame_chunks(
    gen: TrackedVideo, ref: TrackedVideo, max_side: int, step: int, chunk: int = 16
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every `step`-th paired frame, shrunk to at most max_side, as float tensors in [0, 1],
    a few at a time (whole videos in float would take gigabytes)."""
    if gen.frames.shape[1:] != ref.frames.shape[1:]:
        raise ValueError(f"frame sizes differ: {gen.frames.shape[1:3]} vs {ref.frames.shape[1:3]}")
    idx = np.arange(0, min(len(gen.frames), len(ref.frames)), step)
    h, w = gen.frames.shape[1:3]
    scale = min(1.0, max_side / max(h, w))
    size = (round(w * scale), round(h * scale))

    def load(frames: np.ndarray) -> torch.Tensor:
        small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        return torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255

    for i in range(0, len(idx), chunk):
        part = idx[i : i + chunk]
        yield load(gen.frames[part]), load(ref.frames[part])


PSNR_CAP = 100.0  # dB for identical frames (instead of inf, which JSON cannot hold)


def psnr(gen: TrackedVideo, ref: TrackedVideo, max_side: int = 256, step: int = 1) -> float:
    """Mean over frames of each frame's PSNR (dB), each capped at PSNR_CAP."""
    per_frame = [
        peak_signal_noise_ratio(g, r, data_range=1.0, reduction="none", dim=(1, 2, 3))
        for g, r in _frame_chunks(gen, ref, max_side, step)
    ]
    return float(torch.cat(per_frame).clamp(max=PSNR_CAP).mean())


def ssim(gen: TrackedVideo, ref: TrackedVideo, max_side: int = 256, step: int = 1) -> float:
    """Mean over frames of each frame's SSIM (Gaussian window 11, sigma 1.5)."""
    chunks = _frame_chunks(gen, ref, max_side, step)
    return float(
        torch.cat(
            [structural_similarity_index_measure(g, r, data_range=1.0, reduction="none") for g, r in chunks]
        ).mean()
    )


class VideoMean(Metric):
    """Mean of a per-video score over videos; NaN scores are left out. `last` holds the
    latest video's score (torchmetrics' update returns nothing)."""

    full_state_update = False

    def __init__(self, fn: Callable[..., float], **kwargs):
        super().__init__(**kwargs)
        self.fn = fn
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, *videos: TrackedVideo) -> None:
        value = self.last = self.fn(*videos)
        if not np.isnan(value):
            self.total += value
            self.count += 1

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp(min=1)
