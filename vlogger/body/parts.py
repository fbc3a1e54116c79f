"""The params of the optional parts (hands, eyes) a data spec's `parts` asks for, added to any
body model's fit, so SMPL-X and face-mesh shards carry them alike."""

from __future__ import annotations

import numpy as np

from vlogger.body.eyes import eye_params
from vlogger.body.hands import hand_params


def part_params(parts: tuple[str, ...], lmk: np.ndarray, fmt: str, hands: np.ndarray, fit: dict) -> dict:
    """Extra params keys of `parts` for one clip: landmarks (T, K, 3) and hand track (T, 2, 21, 4)
    in crop pixels, `fit` the body model's params (its head pose turns the iris into gaze)."""
    out = {}
    if "hands" in parts:
        out |= hand_params(hands)
    if "eyes" in parts:
        out |= eye_params(lmk, fmt, fit)
    return out
