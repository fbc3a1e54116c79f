"""The one interface every evaluation metric has, so the runner can loop over a collection.

A metric is a torchmetrics `Metric` scored one video at a time, in two steps:

- `measure(video, frames)`: the expensive, pure part (tracking results in, per-video scores
  out). It may run in a worker process, so it touches no state.
- `update(measured)`: folds a measurement into running sums. The runner calls it in video
  order in one process, so any number of workers gives the same sums to the last digit.

Frames are never handed over whole: a metric that reads pixels returns a `FrameReader` from
`reader()`, which the runner feeds chunk by chunk while it decodes and tracks, and which
keeps only what the metric needs (a few sampled frames, or running per-frame values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torchmetrics import Metric

from vlogger.evaluation.tracks import TrackedVideo, VideoSource


@dataclass(frozen=True)
class Needs:
    """What a metric reads besides the generated video's frames and face track."""

    audio: bool = False  # the driving audio (audio dir or the video's own track)
    reference_video: bool = False  # ground truth, paired frame by frame
    reference_image: bool = False  # the identity reference: a reference image, or a reference video's first frame
    weights: tuple[str, ...] = ()  # zoo names; missing ones skip the metric with the command that fetches them
    paste_mask: bool = False  # the paste mask beside the generated video (vlogger.core.paste_mask)

    def met(self, audio: bool, reference_video: bool, reference_image: bool, paste_mask: bool = False) -> bool:
        """Whether a video that brings these inputs can be scored (weights are checked once, up front)."""
        return (
            (audio or not self.audio)
            and (reference_video or not self.reference_video)
            and (reference_image or not self.reference_image)
            and (paste_mask or not self.paste_mask)
        )


@dataclass
class EvalVideo:
    """One generated video and what it is scored against, tracked; its frames are not here."""

    name: str
    gen: TrackedVideo
    ref: TrackedVideo | None = None
    reference_image: np.ndarray | None = None  # (H, W, 3) uint8 RGB


@dataclass
class Measured:
    """One video's measurement: `row` goes to the results file, `value` to `update`."""

    row: dict[str, Any] = field(default_factory=dict)
    value: Any = None  # None: nothing to fold in (e.g. the score is undefined for this video)


class FrameReader:
    """Sees every decoded frame once, in chunks, and keeps what one metric needs of one video.

    Frames come one video at a time (the other side None) while each is tracked; a `paired`
    reader instead gets both videos' frames together, in a decoding pass of its own.
    """

    paired: ClassVar[bool] = False

    def add(self, start: int, gen: np.ndarray | None, ref: np.ndarray | None) -> None:
        """Frames start.. of the generated and/or the reference video."""
        raise NotImplementedError


class SampledFrames(FrameReader):
    """Keeps copies of the frames at fixed indices (bounded by the metric, not the video length)."""

    def __init__(self, gen_indices: Sequence[int] = (), ref_indices: Sequence[int] = ()) -> None:
        self.wanted = (set(int(i) for i in gen_indices), set(int(i) for i in ref_indices))
        self.kept: tuple[dict[int, np.ndarray], dict[int, np.ndarray]] = ({}, {})

    def add(self, start: int, gen: np.ndarray | None, ref: np.ndarray | None) -> None:
        for chunk, wanted, kept in zip((gen, ref), self.wanted, self.kept, strict=True):
            if chunk is None:
                continue
            for i in wanted.intersection(range(start, start + len(chunk))):
                kept[i] = chunk[i - start].copy()  # a view would keep the whole chunk alive

    def gen(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self.kept[0][int(i)] for i in indices])

    def ref(self, indices: Sequence[int]) -> np.ndarray:
        return np.stack([self.kept[1][int(i)] for i in indices])


def spread(n_frames: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over a video (all of them when it is shorter)."""
    return np.linspace(0, n_frames - 1, min(n_frames, count)).astype(int)


class VideoMetric(Metric):
    """A metric of the evaluation protocol (see the module docstring for the two steps).

    `name` keys the metric in `skipped_metrics`; `scores` maps each aggregate it reports to
    higher-is-better (True/False, None when neither, e.g. a signed offset). One-score
    metrics just set torchmetrics' `higher_is_better` and report under `name`.
    """

    full_state_update = False
    is_differentiable = False
    name: ClassVar[str]
    needs: Needs = Needs()  # an instance may narrow it (e.g. identity's weights depend on the backbone)
    scores: ClassVar[dict[str, bool | None]] = {}

    @classmethod
    def from_protocol(cls, protocol: dict) -> VideoMetric:
        """The metric set up as the protocol says; raises (missing package or weights) when it cannot run here."""
        return cls(protocol)

    @classmethod
    def directions(cls) -> dict[str, bool | None]:
        """Aggregate key -> higher is better, for every score this metric reports."""
        return dict(cls.scores) or {cls.name: cls.higher_is_better}

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> FrameReader | None:
        """What to keep of the frames while decoding (None: this metric reads the track only)."""
        return None

    def measure(self, video: EvalVideo, frames: FrameReader | None) -> Measured:
        raise NotImplementedError

    def update(self, measured: Measured) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The aggregates; {} when no video gave a score. Raises ValueError/RuntimeError with the
        reason when the videos seen cannot give one (e.g. FID from a single frame)."""
        raise NotImplementedError
