"""One raw video -> accepted clip samples (the members of the data contract) + rejections."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlogger.body.fitting import make_fitter, residual_scores
from vlogger.body.params import to_npz_bytes
from vlogger.body.parts import part_params
from vlogger.core import crop, landmarks
from vlogger.core.audio import fit_length, load_audio, to_flac
from vlogger.core.avsync import SyncSettings, av_sync
from vlogger.core.errors import BadInput
from vlogger.core.mel import LogMel
from vlogger.core.spec import DataSpec
from vlogger.core.tracking import interpolate_missing
from vlogger.core.video import VideoInfo, encode_mp4, probe, read_frames, resample_indices, scaled_size
from vlogger.preprocessing import quality, segments
from vlogger.preprocessing.audio_features import AudioFeatures, audio_features
from vlogger.preprocessing.splits import identity_of, split_of


@dataclass
class VideoResult:
    """What a worker sends back for one input file."""

    input: str  # path relative to the input root
    samples: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"file", "clip", "reason"}
    timings: dict = field(default_factory=lambda: defaultdict(float))  # CPU seconds per stage
    frames: int = 0  # frames at the working rate that went through tracking


class _Stage:
    """Adds the CPU time of a `with` block to result.timings[name]."""

    def __init__(self, timings: dict, name: str):
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.t0 = time.process_time()

    def __exit__(self, *exc) -> None:
        self.timings[self.name] += time.process_time() - self.t0


def sample_key(rel: str, clip: int) -> str:
    """WebDataset key: the relative path with separators and dots made safe, plus the clip."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", str(Path(rel).with_suffix("")).replace("/", "__"))
    return f"{stem}-{clip:03d}"


def process_video(path: Path, rel: str, cfg: dict, tracker) -> VideoResult:
    """Run ingest, tracking, splitting, quality, crop, audio features for one file.

    Raises BadInput when the whole file is unusable; a clip-level problem becomes a
    rejection entry and the other clips go on.
    """
    res = VideoResult(input=rel)
    ing, clip_cfg = cfg["ingest"], cfg["clips"]
    fps, sr = ing["fps"], ing["sample_rate"]
    with _Stage(res.timings, "decode"):
        info = probe(path)
        if not info.has_audio:
            raise BadInput(path, "no audio track")
        idx = resample_indices(info.frame_times, info.duration, fps)
        min_len = round(clip_cfg["min_seconds"] * fps)
        if len(idx) < min_len:
            raise BadInput(path, f"too short: {len(idx)} frames at {fps} fps, need at least {min_len}")
    with _Stage(res.timings, "audio"):
        raw = load_audio(path, sr, start_time=info.start_time)
        audio = fit_length(raw, len(idx) * sr // fps)
        if np.abs(audio).max() < 1e-4:
            raise BadInput(path, "audio track is silent")
    track, hists, cache = _track(info, idx, cfg, tracker, res)
    res.frames = len(idx)
    cuts = segments.shot_cuts(hists, clip_cfg["shot_cut_threshold"])
    spans, dropped = segments.split_clips(
        len(idx), cuts, track.found, min_len, round(clip_cfg["max_seconds"] * fps), clip_cfg["max_gap_frames"]
    )
    if not spans:
        raise BadInput(path, quality.video_rejection_reason(track, dropped, cfg["tracking"]["several_faces_fraction"]))
    for s, e, reason in dropped:
        res.rejected.append({"file": rel, "clip": [s, e], "reason": reason})
    mel = audio_features(cfg["audio_features"], sr)
    for clip_no, (s, e) in enumerate(spans):
        sample = _make_sample(info, idx, s, e, track, audio, cache, mel, cfg, res)
        if isinstance(sample, str):
            res.rejected.append({"file": rel, "clip": [s, e], "reason": sample})
        else:
            sample["__key__"] = sample_key(rel, clip_no)
            seconds = {"video": round(info.duration, 4), "audio": round(len(raw) / sr, 4)}
            sample["json"].update(source=rel, clip=clip_no, source_seconds=seconds)
            res.samples.append(sample)
    return res


def _track(info: VideoInfo, idx: np.ndarray, cfg: dict, tracker, res: VideoResult):
    """Pass 1 at tracking resolution: landmarks and shot-cut histograms for every frame.

    When tracking runs at full resolution and the frames fit in ~1 GB, they are kept so
    the crop pass need not decode again.
    """
    size = scaled_size(info.width, info.height, cfg["ingest"]["track_max_side"])
    keep = size == (info.width, info.height) and len(idx) * size[0] * size[1] * 3 < 1 << 30
    cache, hists = [], []
    tracker.start()
    frames = read_frames(info, idx, None if keep else size)
    while True:
        with _Stage(res.timings, "decode"):
            frame = next(frames, None)
        if frame is None:
            break
        with _Stage(res.timings, "track"):
            hists.append(segments.color_histogram(frame))
            tracker.step(frame)
        if keep:
            cache.append(frame)
    with _Stage(res.timings, "track"):
        track = tracker.finish()
    sx, sy = info.width / size[0], info.height / size[1]
    track.face[..., :3] *= np.array([sx, sy, sx], np.float32)
    track.pose[..., :3] *= np.array([sx, sy, sx], np.float32)
    track.hands[..., :3] *= np.array([sx, sy, sx], np.float32)
    return track, np.stack(hists), (cache if keep else None)


def _make_sample(info, idx, s, e, track, audio, cache, mel: AudioFeatures, cfg: dict, res: VideoResult) -> dict | str:
    """The data-contract members of clip [s, e), or the reason it is rejected."""
    ing, q, c = cfg["ingest"], cfg["quality"], cfg["crop"]
    fps, sr = ing["fps"], ing["sample_rate"]
    fmt = track.landmark_format
    found = track.found[s:e]
    face = track.face[s:e]
    scores = quality.clip_scores(face, found, fmt, track.face_count[s:e], track.face_score[s:e])
    clip_audio = audio[s * sr // fps : e * sr // fps]
    scores["speech_fraction"] = quality.speech_fraction(clip_audio, sr)
    reason = quality.rejection_reason(scores, q, cfg["tracking"]["several_faces_fraction"])
    if reason:
        return reason
    face = interpolate_missing(face)
    pose = interpolate_missing(track.pose[s:e])
    with _Stage(res.timings, "crop_encode"):
        inside = (info.width, info.height) if c["keep_inside"] else None
        boxes = crop.crop_boxes(face, fps, c["scale"], c["shift_down"], c["smooth_seconds"], inside)
        source = cache[s:e] if cache is not None else read_frames(info, idx[s:e])
        crops = np.stack([crop.crop_frame(f, b, c["size"]) for f, b in zip(source, boxes, strict=True)])
        scores["sharpness"] = quality.sharpness(crops)
        if scores["sharpness"] < q["min_sharpness"]:
            return f"blurred: sharpness {scores['sharpness']:.1f} < {q['min_sharpness']}"
        enc = cfg["encode"]
        video = encode_mp4(crops, fps, enc["codec"], enc["crf"], enc["preset"])
    with _Stage(res.timings, "audio"):
        lmk = crop.to_crop_coords(face, boxes, c["size"])
        # the sync signal is defined on the default log-mel's bands, whatever features stage 1 reads
        settings = SyncSettings.from_config(cfg["sync"])
        sync = av_sync(landmarks.lip_opening(lmk, fmt), clip_audio, fps, settings, LogMel(sample_rate=sr))
        scores["sync_confidence"], scores["sync_offset"], scores["sync_z"] = sync.confidence, sync.offset, sync.z
        mel_rows = mel.for_frames(clip_audio, e - s, fps)
    pose_crop = crop.to_crop_coords(pose, boxes, c["size"]).astype(np.float32)
    hands = crop.to_crop_coords(track.hands[s:e].reshape(e - s, -1, 4), boxes, c["size"])
    hands = hands.reshape(track.hands[s:e].shape).astype(np.float32)
    parts = DataSpec.from_preprocess_config(cfg, fmt, None).parts
    params = None
    fitter = make_fitter(cfg["fit"])
    if fitter is not None:
        with _Stage(res.timings, "fit"):
            params = fitter(lmk, pose_crop, c["size"], hands if "hands" in parts else None)
            params |= part_params(parts, lmk, fmt, hands, params)
        scores.update(residual_scores(params))
        limit = cfg["fit"]["max_residual_px"] * c["size"] / 256
        if scores["fit_residual_px"] > limit:
            return f"3D fit off: mean re-projection error {scores['fit_residual_px']:.2f} px > {limit:.2f}"
    sc = cfg["shards"]
    identity = identity_of(res.input, sc["identity_from"], sc["identities"])
    meta = {
        "fps": fps,
        "n_frames": e - s,
        "sample_rate": sr,
        "size": c["size"],
        "source_fps": round(info.source_fps, 3),
        "source_size": [info.width, info.height],
        "source_frames": [int(idx[s]), int(idx[e - 1]) + 1],
        "start_seconds": s / fps,
        "crop_boxes": np.round(boxes, 2).tolist(),
        "landmark_format": fmt,
        "mel": {**cfg["audio_features"], "rows_per_frame": mel.rows_per_frame(fps)},
        "quality": {k: round(float(v), 4) for k, v in scores.items()},
        "identity": identity,
        "split": split_of(identity, sc["val_fraction"], sc["test_identities"]),
        "tracker": cfg["tracking"]["backend"],
        "body_model": cfg["fit"]["body_model"],
        "config_version": cfg["version"],
    }
    extra = {"hands.npy": hands} if "hands" in parts else {}
    if params is not None:
        extra["params.npz"] = to_npz_bytes(params)
    return {
        "mp4": video,
        "flac": to_flac(clip_audio, sr),
        "mel.npy": mel_rows,
        "lmk.npy": lmk.astype(np.float32),
        "pose.npy": pose_crop,
        "json": meta,
    } | extra
