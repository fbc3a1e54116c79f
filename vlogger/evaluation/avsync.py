"""The weight-free sync signal (`vlogger.core.avsync`) as a metric over videos."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from vlogger.core.avsync import av_sync
from vlogger.core.mel import LogMel


class AVSync(Metric):
    """Mean weight-free sync confidence and |offset| over videos (sums, so DDP-syncable).
    `last` holds the latest video's result (torchmetrics' update returns nothing)."""

    full_state_update = False

    def __init__(self, cfg: dict, fps: float = 25.0, **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.fps = cfg, fps
        self._mel = LogMel()
        for name in ("conf_sum", "abs_offset_sum", "videos", "offset_videos"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, mouth: np.ndarray, audio: np.ndarray) -> None:
        res = self.last = av_sync(mouth, audio, self.fps, self.cfg, self._mel)
        self.conf_sum += res["av_confidence"]
        self.videos += 1
        if not np.isnan(res["av_offset"]):
            self.abs_offset_sum += abs(res["av_offset"])
            self.offset_videos += 1

    def compute(self) -> dict:
        return {
            "av_confidence": float(self.conf_sum / self.videos.clamp(min=1)),
            "av_abs_offset": float(self.abs_offset_sum / self.offset_videos.clamp(min=1)),
        }
