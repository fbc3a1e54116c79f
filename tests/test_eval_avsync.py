"""The weight-free sync metric and the landmark metrics on the nine real clips."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from vlogger.core import landmarks
from vlogger.core.avsync import SyncSettings, av_sync, sync_from_velocities
from vlogger.core.config import load_config
from vlogger.evaluation import motion
from vlogger.evaluation.avsync import AVSync
from vlogger.evaluation.metric import EvalVideo
from vlogger.evaluation.tracks import eval_tracker, track_video

FPS = 25
HOP = 16000 // FPS


@pytest.fixture(scope="module")
def protocol() -> dict:
    return load_config(None, "eval/protocol.yaml")


@pytest.fixture(scope="module")
def settings(protocol) -> SyncSettings:
    return SyncSettings.from_config(protocol["avsync"])


@pytest.fixture(scope="module")
def tracked(protocol, clips_dir):
    clips = clips_dir
    tracker = eval_tracker(protocol)
    return {p.stem: track_video(p, protocol, tracker) for p in sorted(clips.glob("*.mp4"))}


def _mouth(v):
    return landmarks.lip_opening(v.lmk, v.landmark_format)


def _delay(audio: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames * HOP, np.float32), audio])[: len(audio)]


def test_curve_finds_a_known_shift_on_synthetic_signals(settings):
    rng = np.random.default_rng(0)
    v = rng.normal(size=300)
    a = np.roll(v, -4)[:, None] + 0.1 * rng.normal(size=(300, 1))  # audio 4 frames before the mouth
    res = sync_from_velocities(v, a, settings)
    assert res.offset == 4 and res.confidence > 0.5 and res.z > 10
    unrelated = sync_from_velocities(v, rng.normal(size=(300, 1)), settings)
    assert abs(unrelated.confidence) < 0.1 and unrelated.peak > 0.05  # the raw peak is biased, the score is not


def test_delayed_audio_moves_the_offset_by_the_delay(tracked, settings):
    hits = {3: 0, 7: 0}
    for v in tracked.values():
        base = av_sync(_mouth(v), v.audio, FPS, settings).offset
        for k in hits:
            moved = av_sync(_mouth(v), _delay(v.audio, k), FPS, settings).offset
            hits[k] += abs((base - moved) - k) <= 1  # sound later -> mouth relatively earlier
    assert hits[3] >= 7 and hits[7] >= 7, hits


def test_ground_truth_is_in_sync(tracked, settings):
    offsets = [av_sync(_mouth(v), v.audio, FPS, settings).offset for v in tracked.values()]
    assert np.median(np.abs(offsets)) <= 2, offsets


def test_own_audio_scores_higher_than_another_clips_audio(tracked, settings):
    """Issue 14's target: >= 85 % of ordered pairs (62/72 measured, benchmarks/RESULTS.md)."""
    wins, pairs = 0, 0
    for (_, vi), (_, vj) in itertools.permutations(tracked.items(), 2):
        n = min(len(vi.audio), len(vj.audio)) // HOP
        mouth = _mouth(vi)[:n]
        own = av_sync(mouth, vi.audio[: n * HOP], FPS, settings).confidence
        other = av_sync(mouth, vj.audio[: n * HOP], FPS, settings).confidence
        wins += own > other
        pairs += 1
    assert pairs == 72 and wins / pairs >= 0.85, wins / pairs


@pytest.mark.parametrize("length", [50, 120])
def test_confidence_is_zero_on_average_for_unrelated_audio_at_any_length(tracked, settings, length):
    """The null: each clip's first `length` frames against every other clip's audio. The raw peak
    (what 1.0 reported, less a median) sits well above zero and falls with length; the score does not."""
    conf, peak = [], []
    for (_, vi), (_, vj) in itertools.permutations(tracked.items(), 2):
        res = av_sync(_mouth(vi)[:length], vj.audio[: length * HOP], FPS, settings)
        conf.append(res.confidence)
        peak.append(res.peak)
    assert abs(np.mean(conf)) < 0.03 < 0.1 < np.mean(peak), (np.mean(conf), np.mean(peak))


def test_frozen_first_frame_has_no_sync_and_no_jitter(tracked, settings):
    v = tracked["retalking_face5"]
    frozen = replace(v, lmk=np.repeat(v.lmk[:1], len(v.lmk), axis=0))
    res = av_sync(_mouth(frozen), v.audio, FPS, settings)
    assert res.confidence == 0.0 and np.isnan(res.offset)
    assert motion.jitter(frozen) == 0.0 and motion.jitter(v) > 0.1
    assert motion.expression_diversity(frozen) < 1e-9 < 0.1 < motion.expression_diversity(v)


def test_metrics_accumulate_like_torchmetrics(tracked, protocol):
    metric, jit = AVSync(protocol), motion.Jitter(protocol)
    videos = [EvalVideo(name, v) for name, v in list(tracked.items())[:3]]
    rows = []
    for v in videos:
        measured = metric.measure(v, None)
        metric.update(measured)
        jit.update(jit.measure(v, None))
        rows.append(measured.row)
    settings = SyncSettings.from_config(protocol["avsync"])
    per_video = [av_sync(_mouth(v.gen), v.gen.audio, FPS, settings) for v in videos]
    assert [r["av_confidence"] for r in rows] == [r.confidence for r in per_video]
    assert metric.compute()["av_confidence"] == pytest.approx(np.mean([r.confidence for r in per_video]))
    assert jit.compute()["jitter"] == pytest.approx(np.mean([motion.jitter(v.gen) for v in videos]))


def _frames(v) -> np.ndarray:
    return np.concatenate(list(v.source.chunks()))


def test_paired_metrics_zero_against_themselves_and_positive_against_others(tracked):
    a, b = tracked["liveportrait_d11"], tracked["hdtf_WDA_KatieHill_000"]  # both 512 x 512
    assert motion.lip_landmark_error(a, a) == 0.0 < motion.lip_landmark_error(a, b)
    assert motion.head_pose_error(a, a) == 0.0 < motion.head_pose_error(a, b)
    fa, fb = _frames(a), _frames(b)
    assert motion.psnr(fa, fa) == motion.PSNR_CAP and motion.ssim(fa, fa) == pytest.approx(1.0, abs=1e-4)
    assert motion.psnr(fa, fb) < 20
    assert motion.ssim(fa, fb) < 0.9


def test_pixel_metrics_streamed_in_chunks_equal_the_whole_video(tracked):
    """What the runner does (frames arrive 64 at a time) gives the numbers of the whole arrays, bit for bit."""
    a, b = tracked["liveportrait_d11"], tracked["hdtf_WDA_KatieHill_000"]
    fa, fb = _frames(a), _frames(b)
    for per_frame, whole in ((motion._psnr_frames, motion.psnr), (motion._ssim_frames, motion.ssim)):
        n = min(len(fa), len(fb))
        reader = motion.PairedFrames(per_frame, fa.shape[1:3], fb.shape[1:3], n, 256, 2)
        for start in range(0, n, 15):  # odd chunks: the step-2 frames fall at both parities of a chunk start
            reader.add(start, fa[start : min(n, start + 15)], fb[start : min(n, start + 15)])
        assert reader.mean() == whole(fa, fb, 256, 2)


def test_cpbd_drops_when_the_video_is_blurred(tracked):
    import cv2

    frames = _frames(tracked["retalking_face2"])[:8]
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in frames])
    assert motion.cpbd_sharpness(blurred) < 0.5 * motion.cpbd_sharpness(frames)
