"""The per-frame parameter contract every body model writes (`params.npz` in a shard sample).

Image conventions: all positions are in crop pixels of the clip (x right, y down, z away
from the camera, same scale as x), the projection is orthographic (mediapipe's landmarks
are), and a model point X in canonical space lands at `scale * rotation @ X + translation`.

Common keys (T = frames), read by the motion representation and the renderer:
  model        str        "facemesh" | "smplx"
  expression   (T, E)     expression coefficients (model-specific meaning)
  rotation     (T, 3, 3)  head rotation, canonical -> image
  scale        (T,)       pixels per canonical unit
  translation  (T, 3)     image position of the canonical origin
  body         (T, J, 3)  upper-body joints in crop pixels, order BODY_JOINTS
  body_visible (T, J)     1 where the joint was seen (visibility > 0.5), else 0
  residual_px  (T,)       mean 2D distance of re-projected model landmarks to the tracked ones
  size         int        crop side in pixels the positions refer to
Keys of the optional parts (the data spec's `parts` says which a clip carries):
  hands        (T, 2, 21, 3)  the person's left, right hand, crop pixels (`vlogger.body.hands`)
  hand_visible (T, 2, 21)     1 where the point was seen inside the frame
  gaze         (T, 2, 2)      yaw, pitch per eye (left, right) relative to the head (`vlogger.body.eyes`)
  eyelid       (T, 2)         lid gap over eye width per eye: the blink signal
Model-specific keys (identity shape, betas, basis version, ...) ride along.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from vlogger.core.errors import ContractError

# mediapipe pose indices of the joints the body proxy and the motion vector use
BODY_JOINTS: dict[str, int] = {
    "left_shoulder": 11,
    "right_shoulder": 12,
    "left_elbow": 13,
    "right_elbow": 14,
    "left_wrist": 15,
    "right_wrist": 16,
    "left_hip": 23,
    "right_hip": 24,
}

COMMON_KEYS = ("expression", "rotation", "scale", "translation", "body", "body_visible", "residual_px")
# what a clip's params carry beyond the face: the data spec's `parts`, and the keys of each
PART_KEYS: dict[str, tuple[str, ...]] = {
    "face": ("expression", "rotation", "scale", "translation"),
    "body": ("body", "body_visible"),
    "hands": ("hands", "hand_visible"),
    "eyes": ("gaze", "eyelid"),
}


def require_parts(params: dict, parts: tuple[str, ...], where: str) -> None:
    """ContractError when a clip's params lack a key of a part its data spec promises."""
    missing = [k for part in parts for k in PART_KEYS.get(part, ()) if k not in params]
    if missing:
        raise ContractError(f"{where}: params.npz lacks {', '.join(missing)} of the data spec's parts {parts}")


def body_from_pose(pose: np.ndarray, min_visibility: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(T, 33, 4) mediapipe pose (x, y, z, visibility) -> (T, J, 3) joints and (T, J) visibility."""
    idx = list(BODY_JOINTS.values())
    joints = np.nan_to_num(pose[:, idx, :3]).astype(np.float32)
    visible = (np.nan_to_num(pose[:, idx, 3]) > min_visibility).astype(np.float32)
    return joints, visible


def to_npz_bytes(params: dict) -> bytes:
    """Serialise a parameter dict for a shard member (compressed npz, no pickles)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in params.items()})
    return buf.getvalue()


def from_npz(data: bytes | str | Path) -> dict:
    """Read a params.npz (bytes from a shard or a path); strings come back as str."""
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with np.load(src, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    return {k: (str(v) if v.dtype.kind == "U" else v) for k, v in out.items()}
