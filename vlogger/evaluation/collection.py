"""The protocol's metrics, in the order they are scored and reported."""

from __future__ import annotations

from vlogger.evaluation.avsync import AVSync
from vlogger.evaluation.border import BorderRidge, BorderScore
from vlogger.evaluation.drift import Drift
from vlogger.evaluation.fid import FIDScore
from vlogger.evaluation.fvd import FVDScore
from vlogger.evaluation.gestures import (
    BeatAlignment,
    BlinkRate,
    BlinkRateError,
    GazeError,
    GestureMagnitude,
    HandJitter,
    HandKeypointError,
)
from vlogger.evaluation.identity import CSIM, IdentityDlib
from vlogger.evaluation.lse import LSE
from vlogger.evaluation.metric import VideoMetric
from vlogger.evaluation.motion import (
    CPBD,
    LMD,
    PSNR,
    SSIM,
    ExpressionDiversity,
    HeadPoseError,
    Jitter,
    Jitter3D,
    LipLandmarkError,
)
from vlogger.zoo import resolve

METRICS: tuple[type[VideoMetric], ...] = (
    Jitter,
    Jitter3D,
    ExpressionDiversity,
    CPBD,
    LipLandmarkError,
    LMD,
    HeadPoseError,
    BlinkRate,
    BlinkRateError,
    GazeError,
    HandKeypointError,
    HandJitter,
    GestureMagnitude,
    BeatAlignment,
    PSNR,
    SSIM,
    BorderScore,
    BorderRidge,
    AVSync,
    CSIM,
    IdentityDlib,
    Drift,
    LSE,
    FIDScore,
    FVDScore,
)


def directions() -> dict[str, bool | None]:
    """Every aggregate the protocol reports -> higher is better (None: no better direction)."""
    return {key: up for cls in METRICS for key, up in cls.directions().items()}


def build(protocol: dict, only: set[str] | None = None) -> list[tuple[str, VideoMetric | str]]:
    """(name, metric) for each metric set up for the protocol, or (name, reason) where it cannot
    run here (package or weights missing; the reason names the command that fixes it).
    `only`: build just these names."""
    out: list[tuple[str, VideoMetric | str]] = []
    for cls in METRICS:
        if only is not None and cls.name not in only:
            continue
        try:
            for weights in cls.needs.weights:  # before loading anything heavy
                resolve(weights)
            out.append((cls.name, cls.from_protocol(protocol)))
        except Exception as e:  # missing weights / package: the results say which and how to get it
            out.append((cls.name, f"{type(e).__name__}: {e}"))
    return out
