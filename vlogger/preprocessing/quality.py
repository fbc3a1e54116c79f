"""Quality scores of a clip; thresholds live in the config's `quality` section."""

from __future__ import annotations

import cv2
import numpy as np

from vlogger.core import landmarks


def speech_fraction(audio: np.ndarray, sample_rate: int, frame_ms: float = 10.0) -> float:
    """Fraction of 10 ms frames that carry speech-like energy (energy VAD).

    A frame counts when it is louder than -45 dBFS and 10 dB above the clip's noise floor
    (10th percentile), so silence and steady hum both score ~0. Energy VAD instead of a
    neural VAD keeps preprocessing free of model downloads.
    """
    n = int(sample_rate * frame_ms / 1000)
    frames = audio[: len(audio) // n * n].reshape(-1, n)
    if len(frames) == 0:
        return 0.0
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    floor = np.percentile(db, 10)
    return float(np.mean((db > -45.0) & (db > floor + 10.0)))


def sharpness(crops: np.ndarray, every: int = 10) -> float:
    """Median variance of the Laplacian of the gray crops (blur detector)."""
    vals = [cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in crops[::every]]
    return float(np.median(vals))


def face_count_fraction(counts: np.ndarray, test) -> float:
    """Fraction of detector-checked frames (count >= 0) whose face count passes `test`."""
    checked = counts[counts >= 0]
    return float(test(checked).mean()) if len(checked) else 0.0


def clip_scores(face: np.ndarray, found: np.ndarray, fmt: str, counts: np.ndarray, det_scores: np.ndarray) -> dict:
    """Scores from the landmarks and detector of one clip (source-pixel landmarks)."""
    checked = counts >= 0
    return {
        "tracked_fraction": float(found.mean()),
        "face_px": float(np.median(landmarks.face_height(face[found], fmt))),
        "abs_yaw_deg": float(np.median(np.abs(landmarks.yaw_degrees(face[found], fmt)))),
        "several_faces_fraction": face_count_fraction(counts, lambda c: c >= 2),
        "no_face_fraction": face_count_fraction(counts, lambda c: c == 0),
        "detector_score": float(np.nanmean(det_scores[checked])) if checked.any() else float("nan"),
    }


def rejection_reason(scores: dict, q: dict, several_faces_fraction: float) -> str | None:
    """The first threshold a clip fails, in words, or None."""
    checks = [
        (
            scores["several_faces_fraction"] > several_faces_fraction,
            f"several faces: a second large face on {scores['several_faces_fraction']:.0%} of checked frames",
        ),
        (
            scores["tracked_fraction"] < q["min_tracked_fraction"],
            f"face tracked on only {scores['tracked_fraction']:.0%} of frames",
        ),
        (scores["face_px"] < q["min_face_px"], f"face too small: {scores['face_px']:.0f} px < {q['min_face_px']}"),
        (
            scores["abs_yaw_deg"] > q["max_abs_yaw_deg"],
            f"head turned away: median |yaw| {scores['abs_yaw_deg']:.0f} deg > {q['max_abs_yaw_deg']}",
        ),
        (
            scores["speech_fraction"] < q["min_speech_fraction"],
            f"no speech: {scores['speech_fraction']:.0%} of audio frames have speech energy",
        ),
    ]
    return next((msg for bad, msg in checks if bad), None)


def video_rejection_reason(track, dropped: list[tuple[int, int, str]], several_faces_fraction: float) -> str:
    """Why a video yielded no clip at all, most telling reason first."""
    several = face_count_fraction(track.face_count, lambda c: c >= 2)
    if several > several_faces_fraction:
        return f"several faces: a second large face on {several:.0%} of checked frames"
    if track.found.mean() < 0.05:
        seen = face_count_fraction(track.face_count, lambda c: c >= 1)
        return f"face detected on {seen:.0%} of frames but not trackable" if seen > 0.5 else "no face found"
    return "no usable clip: " + ("; ".join(r for _, _, r in dropped) or "no tracked span")
