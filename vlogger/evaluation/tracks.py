"""Decode a video to the protocol's frame rate and track its face: what every metric reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlogger.core.audio import fit_length, load_audio
from vlogger.core.errors import BadInput
from vlogger.core.tracking import MediapipeTracker, interpolate_missing
from vlogger.core.video import probe, read_frames, resample_indices, scaled_size


@dataclass
class TrackedVideo:
    """Frames at tracking size, face-mesh landmarks (pixels of those frames), audio."""

    path: str
    frames: np.ndarray  # (T, h, w, 3) uint8
    lmk: np.ndarray  # (T, 478, 3), gaps interpolated
    found: np.ndarray  # (T,) bool: tracked (not interpolated)
    audio: np.ndarray | None  # 16 kHz mono, aligned to frame 0, len = T * sr / fps
    fps: int
    landmark_format: str = "mediapipe478"


def eval_tracker():
    """Face mesh only (pose is not scored): pose and the people counter run once per video."""

    return MediapipeTracker(
        {"min_detection_confidence": 0.5, "pose_stride": 1 << 30, "count_faces_every": 1 << 30, "second_face_ratio": 1}
    )


def track_video(path: Path, protocol: dict, tracker, audio_path: Path | None = None) -> TrackedVideo:
    """Resample to the protocol fps, track every frame, load the audio (from audio_path when
    given, else the video's own track; None when neither has one)."""
    fps, sr = protocol["video"]["fps"], protocol["audio"]["sample_rate"]
    info = probe(path)
    idx = resample_indices(info.frame_times, info.duration, fps)
    if len(idx) < protocol["video"]["min_frames"]:
        raise BadInput(path, f"too short to score: {len(idx)} frames < {protocol['video']['min_frames']}")
    size = scaled_size(info.width, info.height, protocol["video"]["track_max_side"])
    tracker.start()
    frames = []
    for frame in read_frames(info, idx, size):
        tracker.step(frame)
        frames.append(frame)
    track = tracker.finish()
    if track.found.mean() < 0.5:
        raise BadInput(path, f"face tracked on only {track.found.mean():.0%} of frames")
    audio = None
    if audio_path is not None:
        audio = load_audio(audio_path, sr)
    elif info.has_audio:
        audio = load_audio(path, sr, start_time=info.start_time)
    if audio is not None:
        audio = fit_length(audio, len(idx) * sr // fps)
    return TrackedVideo(str(path), np.stack(frames), interpolate_missing(track.face), track.found, audio, fps)
