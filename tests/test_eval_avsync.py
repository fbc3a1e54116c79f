"""The weight-free sync metric and the landmark metrics on the nine real clips."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from vlogger.core import landmarks
from vlogger.core.avsync import av_sync, offset_and_confidence, sync_curve
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
def tracked(protocol, clips_dir):
    clips = clips_dir
    tracker = eval_tracker()
    return {p.stem: track_video(p, protocol, tracker) for p in sorted(clips.glob("*.mp4"))}


def _mouth(v):
    return landmarks.mouth_opening(v.lmk, v.landmark_format)


def _delay(audio: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames * HOP, np.float32), audio])[: len(audio)]


def test_curve_finds_a_known_shift_on_synthetic_signals():
    rng = np.random.default_rng(0)
    v = rng.normal(size=300)
    a = np.roll(v, -4)[:, None] + 0.1 * rng.normal(size=(300, 1))  # audio 4 frames before the mouth
    off, conf = offset_and_confidence(sync_curve(v, a, 15), 8)
    assert off == 4 and conf > 0.5


def test_delayed_audio_moves_the_offset_by_the_delay(tracked, protocol):
    cfg = protocol["avsync"]
    hits = {3: 0, 7: 0}
    for v in tracked.values():
        base = av_sync(_mouth(v), v.audio, FPS, cfg)["av_offset"]
        for k in hits:
            moved = av_sync(_mouth(v), _delay(v.audio, k), FPS, cfg)["av_offset"]
            hits[k] += abs((base - moved) - k) <= 1  # sound later -> mouth relatively earlier
    assert hits[3] >= 7 and hits[7] >= 7, hits


def test_ground_truth_is_in_sync(tracked, protocol):
    offsets = [av_sync(_mouth(v), v.audio, FPS, protocol["avsync"])["av_offset"] for v in tracked.values()]
    assert np.median(np.abs(offsets)) <= 2, offsets


def test_own_audio_scores_higher_than_another_clips_audio(tracked, protocol):
    cfg, wins, pairs = protocol["avsync"], 0, 0
    for (_, vi), (_, vj) in itertools.permutations(tracked.items(), 2):
        n = min(len(vi.audio), len(vj.audio)) // HOP
        mouth = _mouth(vi)[:n]
        own = av_sync(mouth, vi.audio[: n * HOP], FPS, cfg)["av_confidence"]
        other = av_sync(mouth, vj.audio[: n * HOP], FPS, cfg)["av_confidence"]
        wins += own > other
        pairs += 1
    assert pairs == 72 and wins / pairs >= 0.8, wins / pairs


def test_frozen_first_frame_has_no_sync_and_no_jitter(tracked, protocol):
    v = tracked["retalking_face5"]
    frozen = replace(v, lmk=np.repeat(v.lmk[:1], len(v.lmk), axis=0))
    res = av_sync(_mouth(frozen), v.audio, FPS, protocol["avsync"])
    assert res["av_confidence"] == 0.0 and np.isnan(res["av_offset"])
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
    per_video = [av_sync(_mouth(v.gen), v.gen.audio, FPS, protocol["avsync"]) for v in videos]
    assert [r["av_confidence"] for r in rows] == [r["av_confidence"] for r in per_video]
    assert metric.compute()["av_confidence"] == pytest.approx(np.mean([r["av_confidence"] for r in per_video]))
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
