"""The hand and eye metrics (vlogger.evaluation.gestures) on tracks made by hand: each scores what
it says, in its units, and says why it cannot score a video without a hand track."""

from __future__ import annotations

import numpy as np
import pytest

from vlogger.body.facemesh import FaceBasis
from vlogger.core import landmarks
from vlogger.evaluation import collection, gestures
from vlogger.evaluation.metric import EvalVideo
from vlogger.evaluation.tracks import TrackedVideo

FPS, SR, T = 25, 16000, 200  # 8 s
FMT = landmarks.FORMATS["mediapipe478"]


def _face(n: int = T) -> np.ndarray:
    """(T, 478, 3) a still frontal face 100 px high."""
    mean = FaceBasis.load().mean.astype(np.float64)
    lmk = mean / landmarks.face_height(mean, "mediapipe478") * 100 + [200, 150, 0]
    return np.repeat(lmk[None], n, 0)


def _video(lmk=None, hands=None, audio=None) -> TrackedVideo:
    lmk = _face() if lmk is None else lmk
    return TrackedVideo("x.mp4", lmk, np.ones(len(lmk), bool), audio, FPS, hands=hands)


def _hands(wrist_x: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 4) two open hands 100 px apart, all points seen, the wrists at x = wrist_x (T,)."""
    offsets = np.random.default_rng(0).uniform(-20, 20, (21, 2))
    offsets[0] = 0
    out = np.ones((len(wrist_x), 2, 21, 4))
    for h in range(2):
        out[:, h, :, 0] = wrist_x[:, None] + 100 * h + offsets[:, 0]
        out[:, h, :, 1] = 300 + offsets[:, 1]
    out[..., 2] = 0
    return out


def _bursts(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8 s of audio: 100 ms noise bursts at random times 0.4 to 0.9 s apart over a quiet floor,
    and the frames they start on."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.uniform(0.4, 0.9, 20))
    starts = starts[starts < T / FPS - 0.2]
    audio = 0.001 * rng.standard_normal(T * SR // FPS)
    for s in starts:
        i = int(s * SR)
        audio[i : i + SR // 10] += 0.5 * rng.standard_normal(SR // 10)
    return audio.astype(np.float32), np.round(starts * FPS).astype(int)


def test_hand_scores_in_face_heights():
    t = np.arange(T)
    still = _hands(np.full(T, 100.0))
    moved = _hands(np.full(T, 105.0))  # 5 px = 5 % of the face height
    assert gestures.hand_keypoint_error(_video(hands=moved), _video(hands=still)) == pytest.approx(5.0)
    moved[:100, 0, :, 3] = 0  # frames a hand is not seen in one video are left out
    moved[:100, 0, :, :3] = 0
    assert gestures.hand_keypoint_error(_video(hands=moved), _video(hands=still)) == pytest.approx(5.0)
    assert gestures.hand_jitter(_video(hands=still)) == 0.0
    shaky = _hands(100 + np.random.default_rng(1).normal(0, 1, T))
    assert gestures.hand_jitter(_video(hands=shaky)) > 100  # 1 % of a face height of noise, per s^3
    assert gestures.gesture_magnitude(_video(hands=still)) == 0.0
    swing = _hands(100 + 10 * np.sin(t / 5))  # std 10/sqrt(2) px in x, 0 in y: mean 3.5 %
    assert gestures.gesture_magnitude(_video(hands=swing)) == pytest.approx(10 / np.sqrt(2) / 2, rel=0.05)


def test_beat_alignment_is_high_for_gestures_on_the_speech_onsets_and_chance_for_other_speech():
    audio, onsets = _bursts(0)
    assert np.abs(gestures.speech_onsets(audio, T, FPS, SR)[:, None] - onsets[None]).min(0).max() <= 1
    t = np.arange(T)[:, None]
    strokes = np.tanh((t - onsets[None]) / 1.5).sum(1) * 20  # each stroke fastest on its onset
    hands = _hands(100 + strokes)
    own = gestures.beat_alignment(_video(hands=hands, audio=audio))
    other = np.mean([gestures.beat_alignment(_video(hands=hands, audio=_bursts(s)[0])) for s in (1, 2, 3)])
    assert own > 0.4 and abs(other) < 0.15, (own, other)


def test_blink_rate_and_gaze_error_from_the_face_mesh():
    lmk = _face()
    upper, lower = (np.asarray(FMT["eyelids"])[:, i] for i in (0, 1))
    for start in (20, 90, 160):  # three blinks in 8 s: 22.5 a minute
        lmk[start : start + 3, upper] = lmk[start : start + 3, lower]
    assert gestures.blink_rate(_video(lmk)) == pytest.approx(22.5)
    assert len(gestures.blinks(_video(lmk))) == 3
    still = _video(lmk)
    assert gestures.blink_rate(_video()) == 0.0
    looked = lmk.copy()
    looked[:, FMT["iris"]] += [2.0, 0, 0]  # both irises 2 px to the image right
    err = gestures.gaze_error(_video(looked), still)
    assert 3 < err < 15 and gestures.gaze_error(still, still) == 0.0


def test_hand_metrics_say_why_they_skip_and_every_score_has_a_direction():
    metric = gestures.HandJitter()
    row = metric.measure(EvalVideo("a", _video()), None).row
    assert "hand_stride" in row["hand_jitter_skipped"]
    directions = collection.directions()
    assert directions["gaze_error"] is False and directions["beat_alignment"] is True
    assert directions["blink_rate"] is None and directions["hand_keypoint_error"] is False
