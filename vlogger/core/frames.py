"""Frames between uint8 pictures (T, H, W, 3) and the models' tensors (T, 3, S, S) in [-1, 1]:
one conversion each way for training, generation and evaluation."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def to_unit(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float in [-1, 1] (area-resized)."""
    small = [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames]
    return torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(frames: torch.Tensor, size: int | None = None) -> np.ndarray:
    """(T, 3, S, S) in [-1, 1] -> (T, size, size, 3) uint8 (Lanczos-resized when size differs)."""
    video = ((frames.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    if size is None or size == video.shape[1]:
        return video
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LANCZOS4) for f in video])
