"""Hand landmarks: mediapipe's 21-point layout, which tracked hand is the person's left or right,
and the frames between strided detections.

A hand track is (T, 2, 21, 4): hand 0 is the person's left, hand 1 their right; x, y, z in
pixels (z relative to the wrist, same scale as x) and a visibility that is 1 where the hand was
found and the point lies inside the frame, 0 otherwise (x, y, z NaN where the hand was not found).
"""

from __future__ import annotations

import itertools

import numpy as np

N_HAND_POINTS = 21
# bones of mediapipe's hand skeleton (its HAND_CONNECTIONS), parent -> child
HAND_BONES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
    (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20), (5, 9), (9, 13), (13, 17),
)  # fmt: skip
PALM = (0, 1, 5, 9, 13, 17)  # wrist, thumb base, the four knuckles: the palm's outline
WRIST, MIDDLE_MCP = 0, 9
POSE_WRISTS = (15, 16)  # mediapipe pose: left wrist, right wrist
POSE_ARMS = (11, 12, 15, 16, 17, 18, 19, 20, 21, 22)  # shoulders, wrists and the pose's coarse hand points
BOX_MARGIN = 0.6  # the hand search box reaches this many shoulder widths past those points


def hand_box(pose: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the frame the hand model searches: the pose's arms and hands plus a
    margin. In the whole frame the palm detector sees hands too small and misses some (on a
    seated speaker at 640 px, two hands in 26 of 34 frames vs. 31 of 34 in this box)."""
    pts = pose[list(POSE_ARMS), :2]
    shoulder = np.linalg.norm(pts[0] - pts[1])
    lo = np.maximum(pts.min(0) - BOX_MARGIN * shoulder, 0).astype(int)
    hi = np.minimum(pts.max(0) + BOX_MARGIN * shoulder, [width, height]).astype(int)
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def empty_hands(frames: int) -> np.ndarray:
    """(T, 2, 21, 4) with no hand seen."""
    out = np.full((frames, 2, N_HAND_POINTS, 4), np.nan, np.float32)
    out[..., 3] = 0
    return out


def assign_sides(wrists: np.ndarray, labels: list[str], pose: np.ndarray | None, min_visibility: float) -> list[int]:
    """Side (0 left, 1 right) of each detected hand: by distance to the pose's wrists where both
    are visible, else by mediapipe's handedness label, which assumes a mirrored (selfie) image, so
    its "Left" is the person's right in an ordinary video. `wrists` (N, 2) pixels."""
    n = len(wrists)
    if pose is not None and n and np.all(np.nan_to_num(pose[list(POSE_WRISTS), 3]) > min_visibility):
        d = np.linalg.norm(wrists[:, None] - pose[list(POSE_WRISTS), None, :2].transpose(1, 0, 2), axis=-1)  # (N, 2)
        if n == 1:
            return [int(np.argmin(d[0]))]
        return [0, 1] if d[0, 0] + d[1, 1] <= d[0, 1] + d[1, 0] else [1, 0]
    sides = [1 if label == "Left" else 0 for label in labels]
    if n == 2 and sides[0] == sides[1]:  # both called the same: the one further right in the image is the left hand
        sides = [0, 1] if wrists[0, 0] >= wrists[1, 0] else [1, 0]
    return sides


def fill_between(hands: np.ndarray, checked: np.ndarray) -> np.ndarray:
    """Frames the hand model skipped (`checked` False, all NaN): linear in time between two
    checked frames that both found the hand (visibility: both ends' minimum), else not seen."""
    out = hands.copy()
    idx = np.flatnonzero(checked)
    for a, b in itertools.pairwise(idx):
        w = (np.arange(a + 1, b) - a)[:, None, None] / (b - a)
        for side in range(2):
            ha, hb = hands[a, side], hands[b, side]
            if b - a > 1 and not np.isnan(ha[0, 0]) and not np.isnan(hb[0, 0]):
                out[a + 1 : b, side] = (1 - w) * ha + w * hb
                out[a + 1 : b, side, :, 3] = np.minimum(ha[:, 3], hb[:, 3])
    out[..., 3] = np.nan_to_num(out[..., 3])
    return out
