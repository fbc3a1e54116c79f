"""Named landmark indices per landmark format, and the geometric signals built on them.

One place for "which points are the lips" so preprocessing, fitting and evaluation agree.
"""

from __future__ import annotations

import numpy as np

# index sets per format: mediapipe face mesh (478 points with iris) and the 68-point iBUG layout
FORMATS: dict[str, dict[str, int | list]] = {
    "mediapipe478": {
        "upper_inner_lip": 13,
        "lower_inner_lip": 14,
        "mouth_left": 61,
        "mouth_right": 291,
        "forehead": 10,
        "chin": 152,
        "cheek_right": 234,
        "cheek_left": 454,
        "nose_tip": 1,
        "lips": [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185],
        "inner_lips": [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191],
        "outer_lip_pairs": [(0, 17), (37, 84), (267, 314)],  # upper/lower outer-lip points, middle and either side
        # per eye, the person's left then right: outer and inner corner, upper and lower lid, iris centre
        "eye_corners": [[263, 362], [33, 133]],
        "eyelids": [[386, 374], [159, 145]],
        "iris": [473, 468],
    },
    "fa68": {
        "upper_inner_lip": 62,
        "lower_inner_lip": 66,
        "mouth_left": 48,
        "mouth_right": 54,
        "forehead": 27,
        "chin": 8,
        "cheek_right": 0,
        "cheek_left": 16,
        "nose_tip": 30,
        "lips": list(range(48, 60)),
        "inner_lips": list(range(60, 68)),
        "outer_lip_pairs": [(51, 57), (50, 58), (52, 56)],
        "eye_corners": [[45, 42], [36, 39]],
        "eyelids": [[44, 46], [37, 41]],
    },
}


def point(lmk: np.ndarray, fmt: str, name: str) -> np.ndarray:
    """(..., 3) coordinates of a named point of (..., K, 3) landmarks ((..., *shape, 3) for a
    named set such as `eye_corners`)."""
    return lmk[..., np.asarray(FORMATS[fmt][name]), :]


def has_iris(fmt: str) -> bool:
    """Whether the format tracks the iris centres (gaze needs them)."""
    return "iris" in FORMATS[fmt]


def eye_aperture(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """(..., 2) lid gap over eye width per eye (left, right), in 3D so a turned head does not
    close the eye: about 0.3 open, under 0.1 in a blink."""
    lids, corners = point(lmk, fmt, "eyelids"), point(lmk, fmt, "eye_corners")
    gap = np.linalg.norm(lids[..., 0, :] - lids[..., 1, :], axis=-1)
    return gap / np.maximum(np.linalg.norm(corners[..., 0, :] - corners[..., 1, :], axis=-1), 1e-6)


def face_height(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """Forehead-to-chin distance in the image plane, the scale every ratio divides by."""
    return np.linalg.norm(point(lmk, fmt, "forehead")[..., :2] - point(lmk, fmt, "chin")[..., :2], axis=-1)


def mouth_opening(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """Inner-lip gap over face height, per frame: the jaw signal that follows speech."""
    gap = np.linalg.norm(
        point(lmk, fmt, "upper_inner_lip")[..., :2] - point(lmk, fmt, "lower_inner_lip")[..., :2], axis=-1
    )
    return gap / np.maximum(face_height(lmk, fmt), 1e-6)


def lip_opening(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """Outer-lip gap (mean of three upper/lower pairs) over face height, per frame: the sync signal.
    It follows speech better than the inner gap (13-14), which sits at zero while the lips are
    closed and jumps with tracking noise (issue 14: 62/72 vs 55/72 own-vs-other on the clips)."""
    pairs = np.array(FORMATS[fmt]["outer_lip_pairs"])
    gaps = np.linalg.norm(lmk[..., pairs[:, 0], :2] - lmk[..., pairs[:, 1], :2], axis=-1).mean(-1)
    return gaps / np.maximum(face_height(lmk, fmt), 1e-6)


def yaw_degrees(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """Head yaw from the cheek-to-cheek vector's depth (needs 3D landmarks; 0 when z is flat)."""
    v = point(lmk, fmt, "cheek_left") - point(lmk, fmt, "cheek_right")
    return np.degrees(np.arctan2(v[..., 2], np.abs(v[..., 0]) + 1e-6))
