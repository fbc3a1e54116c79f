"""The weight-free sync signal (`vlogger.core.avsync`) as a metric over videos."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from vlogger.core import landmarks
from vlogger.core.avsync import SyncSettings, av_sync
from vlogger.core.mel import LogMel
from vlogger.evaluation.metric import EvalVideo, FrameReader, Measured, Needs, VideoMetric


class AVSync(VideoMetric):
    """Weight-free sync of each video with its audio; aggregates are the means of the calibrated
    confidence and its z over videos, and the mean |offset| over videos where the mouth moved
    (sums, so DDP-syncable)."""

    name, needs, higher_is_better = "av_sync", Needs(audio=True), None
    scores: ClassVar[dict[str, bool | None]] = {"av_confidence": True, "av_z": True, "av_abs_offset": False}

    def __init__(self, protocol: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.settings, self.fps = SyncSettings.from_config(protocol["avsync"]), protocol["video"]["fps"]
        self._mel = LogMel()
        for name in ("conf_sum", "z_sum", "abs_offset_sum", "videos", "offset_videos"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def measure(self, video: EvalVideo, frames: FrameReader | None) -> Measured:
        mouth = landmarks.lip_opening(video.gen.lmk, video.gen.landmark_format)
        res = av_sync(mouth, video.gen.audio, self.fps, self.settings, self._mel)
        row = {"av_offset": res.offset, "av_confidence": res.confidence, "av_z": res.z, "sync_curve": res.curve}
        return Measured(row, res)

    def update(self, measured: Measured) -> None:
        res = measured.value
        self.conf_sum += res.confidence
        self.z_sum += res.z
        self.videos += 1
        if not np.isnan(res.offset):
            self.abs_offset_sum += abs(res.offset)
            self.offset_videos += 1

    def compute(self) -> dict[str, float]:
        if self.videos == 0:
            return {}
        return {
            "av_confidence": float(self.conf_sum / self.videos),
            "av_z": float(self.z_sum / self.videos),
            "av_abs_offset": float(self.abs_offset_sum / self.offset_videos.clamp(min=1)),
        }
