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
    """Own audio wins most ordered pairs. Issue 14's target (>= 85 %) was met at 62/72 (benchmarks/
    RESULTS.md); a fresh install of the same pinned stack on 2026-12-02 gives 61/72 at the same commit
    (one borderline pair flips between library builds), so the test guards the behaviour at 80 % and the
    target stays a benchmark figure."""
    wins, pairs = 0, 0
    for (_, vi), (_, vj) in itertools.permutations(tracked.items(), 2):
        n = min(len(vi.audio), len(vj.audio)) // HOP
        mouth = _mouth(vi)[:n]
        own = av_sync(mouth, vi.audio[: n * HOP], FPS, settings).confidence
        other = av_sync(mouth, vj.audio[: n * HOP], FPS, settings).confidence
        wins += own > other
        pairs += 1
    assert pairs == 72 and wins / pairs >= 0.8, wins / pairs


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


def test_jitter_3d_is_per_second_whatever_the_frame_rate(tracked):
    """A face moving as x(t) = a t^3 face heights (t in seconds) has a third derivative of 6a everywhere:
    jitter_3d reads 6a at 25 and at 50 fps, where the per-frame jitter differs 8-fold."""
    v, a = tracked["retalking_face5"], 0.02
    height = float(landmarks.face_height(v.lmk[0], v.landmark_format))  # the still face's, every frame
    scores = {}
    for fps in (25, 50):
        t = np.arange(3 * fps) / fps
        lmk = np.repeat(v.lmk[:1], len(t), axis=0).astype(np.float64)
        lmk[..., 0] += (a * t**3 * height)[:, None]
        moving = replace(v, lmk=lmk, fps=fps)
        scores[fps] = (motion.jitter_3d(moving), motion.jitter(moving))
    assert scores[25][0] == pytest.approx(6 * a, rel=1e-6) and scores[50][0] == pytest.approx(6 * a, rel=1e-6)
    assert scores[25][1] == pytest.approx(8 * scores[50][1], rel=1e-6)


def test_lmd_counts_a_misplaced_mouth_that_lme_hides(tracked):
    v = tracked["liveportrait_d11"]  # 512 px: LMD's 256 px scale halves the shift
    shifted = replace(v, lmk=v.lmk + np.array([6.0, 0.0, 0.0], np.float32))
    assert motion.lmd(v, v, 256) == 0.0
    assert motion.lmd(shifted, v, 256) == pytest.approx(6.0 * 256 / 512, rel=1e-5)
    assert motion.lip_landmark_error(shifted, v) == pytest.approx(0.0, abs=1e-4)  # centred on its lips
    assert motion.lmd(v, tracked["hdtf_WDA_KatieHill_000"], 256) > 3


def test_cpbd_reads_the_face_not_the_background(tracked):
    """On an upper-body clip, blurring everything outside a box twice the face height leaves the face-crop CPBD
    as it was, and blurring that box alone lowers it by far more than it lowers protocol 1.0's whole-frame CPBD."""
    import cv2

    v = tracked["upperbody_kim_7s"]  # upper body: most of the frame is not the face
    idx = np.arange(0, 80, 20)
    frames, lmk = _frames(v)[idx], v.lmk[idx]
    blur = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in frames])
    near = np.zeros(frames.shape[:3], np.uint8)
    for i, pts in enumerate(lmk):
        cx, cy = (pts[:, :2].min(0) + pts[:, :2].max(0)) / 2
        half = float(landmarks.face_height(pts, v.landmark_format))  # 2 x face height across
        cv2.rectangle(near[i], (int(cx - half), int(cy - half)), (int(cx + half), int(cy + half)), 1, -1)
    background_blurred = np.where(near[..., None] > 0, frames, blur)
    face_blurred = np.where(near[..., None] > 0, blur, frames)

    def on_face(x):
        return np.mean([motion.cpbd_sharpness(c[None]) for c in motion.face_crops(x, lmk, v.landmark_format, 1.6)])

    sharp, whole = on_face(frames), motion.cpbd_sharpness(frames)
    assert on_face(background_blurred) == sharp
    face_drop = 1 - on_face(face_blurred) / sharp
    assert face_drop > 0.5 and face_drop > 2 * (1 - motion.cpbd_sharpness(face_blurred) / whole)


def test_evaluation_tracks_the_face_only(protocol, clips_dir):
    from vlogger.evaluation.tracks import open_video, track_source

    track = track_source(open_video(clips_dir / "retalking_face5.mp4", protocol), eval_tracker(protocol))
    assert track.found.mean() > 0.9 and np.isnan(track.pose).all() and (track.face_count == -1).all()


def test_preprocessing_scores_sync_with_its_own_settings_equal_to_the_protocols(protocol):
    """#13 leftover: preprocessing reads no evaluation config; its `sync` section holds the same numbers, so a
    clip's recorded sync_confidence means what evaluation's av_confidence means."""
    from pathlib import Path

    import vlogger.preprocessing

    sources = Path(vlogger.preprocessing.__file__).parent.glob("*.py")
    assert not [p.name for p in sources if "eval/" in p.read_text()]
    assert load_config(None, "preprocess/default.yaml")["sync"] == protocol["avsync"]
