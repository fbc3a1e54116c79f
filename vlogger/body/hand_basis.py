"""A compact hand pose learned from data, as the face's expression basis is: PCA of the
wrist-relative, palm-length-normalised 21 points (`hands.hand_pose`) of fully seen hands.

Both hands share one basis: the left hand is mirrored (x -> -x) into a right hand before
encoding and back after decoding, so each hand's gestures teach the other's. The basis keeps
the hand's orientation in the image (a gesture is partly where the fingers point).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlogger.body.hands import _TEMPLATE, hand_pose
from vlogger.core.basis_file import read_basis_file

FORMAT = "vlogger-hand-basis"
FORMAT_VERSION = 1
_MIRROR = np.array([-1.0, 1.0, 1.0], np.float32)  # the person's left hand -> a right hand


@dataclass
class HandBasis:
    """Mean right-hand pose (21, 3), orthonormal components (K, 63), their spread and share."""

    mean: np.ndarray
    components: np.ndarray
    stddev: np.ndarray
    explained: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def basis_id(self) -> str:
        h = hashlib.sha256(self.mean.astype(np.float32).tobytes())
        h.update(self.components.astype(np.float32).tobytes())
        return h.hexdigest()[:12]

    def encode(self, pose: np.ndarray) -> np.ndarray:
        """(..., 2, 21, 3) hand poses (left, right) -> (..., 2, K) coefficients."""
        flat = (pose * _side_signs() - self.mean).reshape(*pose.shape[:-2], -1)
        return flat @ self.components.T

    def decode(self, coeffs: np.ndarray) -> np.ndarray:
        """(..., 2, K) coefficients -> (..., 2, 21, 3) hand poses."""
        flat = coeffs @ self.components
        return (flat.reshape(*coeffs.shape[:-1], 21, 3) + self.mean) * _side_signs()

    def truncated(self, k: int) -> HandBasis:
        """The first `k` components (a model's `hand_components`)."""
        if k > len(self.components):
            raise ValueError(f"the hand basis has {len(self.components)} components, {k} asked for")
        return HandBasis(self.mean, self.components[:k], self.stddev[:k], self.explained[:k], self.info)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: getattr(self, k).astype(np.float32) for k in ("mean", "components", "stddev", "explained")}
        np.savez_compressed(path, format=FORMAT, format_version=FORMAT_VERSION, info=json.dumps(self.info), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> HandBasis:
        keys = ("mean", "components", "stddev", "explained")
        hint = "no hand basis file (make one with `vlogger body fit-hand-basis SHARDS`)"
        arrays, info = read_basis_file(Path(path), FORMAT, FORMAT_VERSION, keys, hint)
        return cls(**arrays, info=info)


def _side_signs() -> np.ndarray:
    """(2, 1, 3): mirror the left hand, keep the right."""
    return np.stack([_MIRROR, np.ones(3, np.float32)])[:, None]


def fit_hand_basis(clips: Iterable[tuple[np.ndarray, np.ndarray]], n_components: int = 12) -> HandBasis:
    """PCA over every fully seen hand of clips given as (hands (T, 2, 21, 3), visible (T, 2, 21))."""
    samples = []
    for hands, visible in clips:
        pose = hand_pose(hands, visible) * _side_signs()
        full = visible.min(-1) > 0
        samples.append(pose[full].reshape(-1, 63))
    x = np.concatenate(samples) if samples else np.zeros((0, 63), np.float32)
    if len(x) <= n_components:
        raise ValueError(f"{len(x)} fully seen hands: too few for {n_components} components")
    mean = x.mean(0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = sv**2 / (len(x) - 1)
    return HandBasis(
        mean.reshape(21, 3).astype(np.float32),
        vt[:n_components].astype(np.float32),
        np.sqrt(var[:n_components]).astype(np.float32),
        (var[:n_components] / var.sum()).astype(np.float32),
        {"hands": len(x)},
    )


def placeholder_hand_basis(n_components: int) -> HandBasis:
    """What a model uses when its training clips show too few hands to learn a basis (close-ups,
    synthetic faces): the template open hand as the mean and the first coordinate axes as
    components, so the motion vector keeps its size and the hands' visibility is all it learns."""
    mean = np.concatenate([_TEMPLATE, np.zeros((21, 1), np.float32)], 1)
    k = n_components
    return HandBasis(
        mean, np.eye(63, dtype=np.float32)[:k], np.ones(k, np.float32), np.zeros(k, np.float32), {"hands": 0}
    )
