"""Hands and eyes of a generated video: hand keypoint error against ground truth, hand jitter,
gesture magnitude, beat alignment of hand movement with the speech, blink rate and gaze error.

The hand scores read the hand track, which the protocol's tracker makes only when it runs the
pose and hand models (`tracking.pose_stride` and `tracking.hand_stride` > 0; off by default, as
they cost time on every video): without it they record why they were skipped. Blinks and gaze
read the face mesh's lids and irises (mediapipe478). Lengths are in face heights (the median
forehead-to-chin distance of the video), so the scores do not depend on the resolution.

The maths works on arrays (`wrist_spread`, `wrist_speed`, `speech_beat_alignment`,
`blink_starts`, `blinks_per_minute`): these metrics feed them a tracked video, and stage 1's
benchmark (benchmarks/gestures_stage1.py) its sampled and tracked params.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from vlogger.body.eyes import EYEBALL_RADIUS
from vlogger.core import landmarks
from vlogger.core.hands import WRIST
from vlogger.core.mel import LogMel
from vlogger.evaluation.metric import EvalVideo, FrameReader, Needs
from vlogger.evaluation.motion import VideoMean
from vlogger.evaluation.tracks import TrackedVideo

BEAT_SIGMA = 2.0  # frames (80 ms at 25 fps): how near a gesture peak must be to an onset to count
NULL_SHIFTS = 20  # circular shifts of the speech onsets that make the null (chance) alignment
BLINK_DEPTH = 0.5  # a blink: the lids closer than this x their median gap
MIN_GAP = 3  # frames between two peaks, onsets or blinks


def _face_height(v: TrackedVideo) -> float:
    return float(np.median(landmarks.face_height(v.lmk, v.landmark_format)))


def _hands(v: TrackedVideo) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, 21, 2) hand points in face heights and (T, 2, 21) bool seen; ValueError without a track."""
    if v.hands is None:
        raise ValueError("no hand track: score with tracking.pose_stride and tracking.hand_stride > 0")
    seen = np.nan_to_num(v.hands[..., 3]) > 0
    return np.nan_to_num(v.hands[..., :2].astype(np.float64)) / _face_height(v), seen


def hand_keypoint_error(gen: TrackedVideo, ref: TrackedVideo) -> float:
    """Mean distance of the 21 points of each hand to the ground truth's, over paired frames where
    both videos see the point, in % of face height (each video's own, so sizes may differ; nan
    when no point is seen in both)."""
    n = min(gen.n_frames, ref.n_frames)
    (g, gs), (r, rs) = _hands(gen), _hands(ref)
    both = gs[:n] & rs[:n]
    if not both.any():
        return float("nan")
    return float(np.linalg.norm(g[:n] - r[:n], axis=-1)[both].mean() * 100)


def hand_jitter(v: TrackedVideo) -> float:
    """Mean jerk (third difference x fps^3) of the hand points seen on 4 frames in a row, in face
    heights / s^3, as `jitter_3d` for the face: a still hand tracked without noise scores 0."""
    x, seen = _hands(v)
    if len(x) < 4:
        return float("nan")
    run = seen[3:] & seen[2:-1] & seen[1:-2] & seen[:-3]
    if not run.any():
        return float("nan")
    return float(np.linalg.norm(np.diff(x, 3, axis=0), axis=-1)[run].mean() * v.fps**3)


def wrist_spread(wrists: np.ndarray, seen: np.ndarray) -> float:
    """How far the hands move: temporal std of each wrist's position (T, 2, D) over the frames
    it is `seen` (T, 2), mean over the D coordinates and the hands seen on 2+ frames, in the
    positions' units (nan when no hand is)."""
    spreads = [wrists[seen[:, h], h].std(0).mean() for h in range(wrists.shape[1]) if seen[:, h].sum() > 1]
    return float(np.mean(spreads)) if spreads else float("nan")


def gesture_magnitude(v: TrackedVideo) -> float:
    """`wrist_spread` of the tracked wrists, in % of face height (0: hands still)."""
    x, seen = _hands(v)
    return wrist_spread(x[:, :, WRIST], seen[:, :, WRIST]) * 100


def wrist_speed(wrists: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(T,) mean speed of the wrists (T, 2, D) seen (T, 2) in a frame and the one before, in the
    positions' units per frame (0 where none is), lightly smoothed."""
    step = np.linalg.norm(np.diff(wrists, axis=0), axis=-1)  # (T-1, 2)
    ok = seen[1:] & seen[:-1]
    speed = np.where(ok, step, 0).sum(1) / np.maximum(ok.sum(1), 1)
    return gaussian_filter1d(np.concatenate([[0.0], speed]), 1.0)


def hand_speed(v: TrackedVideo) -> np.ndarray:
    """(T,) `wrist_speed` of the tracked wrists, face heights per frame."""
    x, seen = _hands(v)
    return wrist_speed(x[:, :, WRIST], seen[:, :, WRIST])


def speech_onsets(audio: np.ndarray, n_frames: int, fps: int, sample_rate: int) -> np.ndarray:
    """Frames of speech onsets: peaks of the positive spectral flux of the log-mel energy (summed
    over bands, per video frame) above its mean plus half a std, at least MIN_GAP frames apart."""
    mel = LogMel(sample_rate=sample_rate).for_frames(audio, n_frames, fps).astype(np.float64)
    flux = np.maximum(np.diff(mel, axis=0), 0).sum(1)
    per_frame = np.concatenate([[0.0], flux]).reshape(n_frames, -1).sum(1)
    peaks, _ = find_peaks(per_frame, height=per_frame.mean() + 0.5 * per_frame.std(), distance=MIN_GAP)
    return peaks


def alignment(peaks: np.ndarray, onsets: np.ndarray, sigma: float = BEAT_SIGMA) -> float:
    """Beat-align score (AIST++'s form): mean over movement peaks of exp(-d² / 2σ²), d the frames
    to the nearest onset; 1 when every peak sits on an onset."""
    if not len(peaks) or not len(onsets):
        return float("nan")
    d = np.abs(peaks[:, None] - onsets[None, :]).min(1)
    return float(np.exp(-(d**2) / (2 * sigma**2)).mean())


def speech_beat_alignment(speed: np.ndarray, audio: np.ndarray, fps: int, sample_rate: int, seed: int = 0) -> float:
    """Alignment of the peaks of a movement's `speed` (T,) with the onsets of the speech `audio`
    (the same T frames at `sample_rate`) above chance: the beat-align score (`alignment`) minus
    its mean over NULL_SHIFTS circular shifts of the onsets by at least a second (the same
    speech, out of step). 0: no better than shuffled audio; up to 1; nan under 3 s or without
    a peak (a still hand)."""
    n = len(speed)
    if n < 3 * fps:
        return float("nan")
    peaks, _ = find_peaks(speed, height=np.median(speed) + 1e-9, distance=MIN_GAP)
    onsets = speech_onsets(audio, n, fps, sample_rate)
    shifts = np.random.default_rng(seed).integers(fps, n - fps, NULL_SHIFTS)
    null = np.mean([alignment(peaks, (onsets + s) % n) for s in shifts])
    return alignment(peaks, onsets) - float(null)


def beat_alignment(v: TrackedVideo, seed: int = 0) -> float:
    """`speech_beat_alignment` of the tracked hands' speed with the video's own speech."""
    if v.audio is None:
        raise ValueError("no audio")
    n = v.n_frames
    return speech_beat_alignment(hand_speed(v), v.audio, v.fps, len(v.audio) * v.fps // n, seed)


def blink_starts(aperture: np.ndarray) -> np.ndarray:
    """Frames where a blink starts in a lid-gap series (T,) (any unit: only its ratio to the
    median counts): the gap drops below BLINK_DEPTH x its median (at least MIN_GAP frames after
    the last blink began)."""
    closed = aperture < BLINK_DEPTH * np.median(aperture)
    starts = np.flatnonzero(closed & ~np.concatenate([[False], closed[:-1]]))
    keep: list[int] = []
    for s in starts:
        if not keep or s - keep[-1] >= MIN_GAP:
            keep.append(int(s))
    return np.asarray(keep, int)


def blinks_per_minute(aperture: np.ndarray, fps: float) -> float:
    """`blink_starts` per minute of a lid-gap series (T,) at `fps` (people blink about 10 to 20
    times a minute in conversation)."""
    return float(len(blink_starts(aperture)) * 60 * fps / len(aperture))


def _aperture(v: TrackedVideo) -> np.ndarray:
    """(T,) mean lid gap of both eyes over the eye width."""
    return landmarks.eye_aperture(v.lmk, v.landmark_format).mean(-1)


def blinks(v: TrackedVideo) -> np.ndarray:
    """`blink_starts` of the mean lid gap of both eyes."""
    return blink_starts(_aperture(v))


def blink_rate(v: TrackedVideo) -> float:
    """`blinks_per_minute` of the mean lid gap of both eyes."""
    return blinks_per_minute(_aperture(v), v.fps)


def image_gaze(lmk: np.ndarray, fmt: str) -> np.ndarray:
    """(T, 2, 2) yaw and pitch per eye (radians) from the iris's offset from the eye's corner
    midpoint in the image plane, on an eyeball of `EYEBALL_RADIUS` eye widths (`body.eyes`'s
    model without undoing the head's rotation: comparable between videos of the same head pose)."""
    if not landmarks.has_iris(fmt):
        raise ValueError(f"gaze needs iris landmarks, which {fmt} lacks")
    corners = landmarks.point(lmk, fmt, "eye_corners")
    width = np.linalg.norm(corners[..., 0, :] - corners[..., 1, :], axis=-1)
    offset = (landmarks.point(lmk, fmt, "iris") - corners.mean(-2))[..., :2]
    return np.arcsin(np.clip(offset / (EYEBALL_RADIUS * width[..., None]), -1, 1))


def gaze_error(gen: TrackedVideo, ref: TrackedVideo) -> float:
    """Mean absolute difference of both eyes' yaw and pitch (`image_gaze`) over paired frames, degrees."""
    n = min(gen.n_frames, ref.n_frames)
    g, r = (image_gaze(v.lmk[:n], v.landmark_format) for v in (gen, ref))
    return float(np.degrees(np.abs(g - r)).mean())


class HandKeypointError(VideoMean):
    name, higher_is_better = "hand_keypoint_error", False
    needs = Needs(reference_video=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return hand_keypoint_error(video.gen, video.ref)


class HandJitter(VideoMean):
    name, higher_is_better = "hand_jitter", False

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return hand_jitter(video.gen)


class GestureMagnitude(VideoMean):
    """No better direction on its own: compare with the ground truth's (a frozen model scores 0)."""

    name, higher_is_better = "gesture_magnitude", None

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return gesture_magnitude(video.gen)


class BeatAlignment(VideoMean):
    name, higher_is_better = "beat_alignment", True
    needs = Needs(audio=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return beat_alignment(video.gen)


class BlinkRate(VideoMean):
    """No better direction on its own: compare with the ground truth's (`blink_rate_error`)."""

    name, higher_is_better = "blink_rate", None

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return blink_rate(video.gen)


class BlinkRateError(VideoMean):
    name, higher_is_better = "blink_rate_error", False
    needs = Needs(reference_video=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return abs(blink_rate(video.gen) - blink_rate(video.ref))


class GazeError(VideoMean):
    name, higher_is_better = "gaze_error", False
    needs = Needs(reference_video=True)

    def score(self, video: EvalVideo, frames: FrameReader | None) -> float:
        return gaze_error(video.gen, video.ref)
