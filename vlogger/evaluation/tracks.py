"""Decode a video at the protocol's frame rate and track its face: what every metric reads.

Frames are streamed, never stacked: a video is decoded chunk by chunk, each chunk goes to the
face tracker and to whoever else reads frames, and is then dropped; what needs the generated
and the reference frame at once decodes both again side by side. What stays is the face
track, the audio and how to decode the video again (`VideoSource`), so memory does not grow
with the length of the video beyond its landmarks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlogger.core.audio import fit_length, load_audio
from vlogger.core.errors import BadInput
from vlogger.core.tracking import interpolate_missing, make_tracker
from vlogger.core.video import VideoInfo, probe, read_frames, resample_indices, scaled_size

CHUNK = 16  # frames decoded and handed on at a time


@dataclass(frozen=True)
class VideoSource:
    """A video opened at the protocol's rate and tracking size: what to decode, not the frames."""

    info: VideoInfo
    indices: np.ndarray  # source frame shown at each protocol frame
    size: tuple[int, int]  # (w, h) decoded

    @property
    def path(self) -> Path:
        return Path(self.info.path)

    @property
    def n_frames(self) -> int:
        return len(self.indices)

    def chunks(self, chunk: int = CHUNK) -> Iterator[np.ndarray]:
        """(n <= chunk, h, w, 3) uint8 RGB frames, in order."""
        frames = read_frames(self.info, self.indices, self.size, chunk)
        while block := list(itertools.islice(frames, chunk)):
            yield np.stack(block)


def open_video(path: Path, protocol: dict) -> VideoSource:
    """Probe and check a video (BadInput naming the file when it cannot be scored)."""
    info = probe(path)
    idx = resample_indices(info.frame_times, info.duration, protocol["video"]["fps"])
    if len(idx) < protocol["video"]["min_frames"]:
        raise BadInput(path, f"too short to score: {len(idx)} frames < {protocol['video']['min_frames']}")
    return VideoSource(info, idx, scaled_size(info.width, info.height, protocol["video"]["track_max_side"]))


@dataclass
class TrackedVideo:
    """Face-mesh landmarks (pixels of the decoded frames), audio, and the source to decode again."""

    path: str
    lmk: np.ndarray  # (T, 478, 3), gaps interpolated
    found: np.ndarray  # (T,) bool: tracked (not interpolated)
    audio: np.ndarray | None  # 16 kHz mono, aligned to frame 0, len = T * sr / fps
    fps: int
    source: VideoSource | None = None  # None for tracks made by hand (tests)
    landmark_format: str = "mediapipe478"
    hands: np.ndarray | None = None  # (T, 2, 21, 4) `core.hands` track; None unless the protocol tracks hands

    @property
    def n_frames(self) -> int:
        return len(self.lmk)


def eval_tracker(protocol: dict):
    """The protocol's face tracker (`tracking`; no pose graph or people counter: nothing scores them)."""
    return make_tracker(protocol["tracking"])


def video_audio(source: VideoSource, protocol: dict, audio_path: Path | None = None) -> np.ndarray | None:
    """The driving audio (audio_path when given, else the video's own track; None when neither
    has one), aligned to frame 0 and cut to the video's length."""
    fps, sr = protocol["video"]["fps"], protocol["audio"]["sample_rate"]
    if audio_path is not None:
        audio = load_audio(audio_path, sr)
    elif source.info.has_audio:
        audio = load_audio(source.path, sr, start_time=source.info.start_time)
    else:
        return None
    return fit_length(audio, source.n_frames * sr // fps)


def track_source(source: VideoSource, tracker, sink: Callable[[int, np.ndarray], None] | None = None):
    """Decode and track every frame, handing each chunk to `sink(start, chunk)` on the way."""
    tracker.start()
    start = 0
    for chunk in source.chunks():
        for frame in chunk:
            tracker.step(frame)
        if sink is not None:
            sink(start, chunk)
        start += len(chunk)
    return tracker.finish()


def paired_chunks(gen: VideoSource, ref: VideoSource) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, gen chunk, ref chunk) of the two videos decoded side by side, up to the shorter's end."""
    for i, (g, r) in enumerate(zip(gen.chunks(), ref.chunks(), strict=False)):
        yield i * CHUNK, g[: len(r)], r[: len(g)]


def tracked(source: VideoSource, track, audio: np.ndarray | None, protocol: dict) -> TrackedVideo:
    """The track as metrics read it; BadInput when the face was found on too few frames."""
    if track.found.mean() < 0.5:
        raise BadInput(source.path, f"face tracked on only {track.found.mean():.0%} of frames")
    face = interpolate_missing(track.face)
    fps = protocol["video"]["fps"]
    hands = track.hands if protocol["tracking"]["hand_stride"] and protocol["tracking"]["pose_stride"] else None
    return TrackedVideo(str(source.path), face, track.found, audio, fps, source, track.landmark_format, hands)


def track_video(path: Path, protocol: dict, tracker, audio_path: Path | None = None) -> TrackedVideo:
    """One video on its own: resample to the protocol fps, track every frame, load the audio."""
    source = open_video(path, protocol)
    return tracked(source, track_source(source, tracker), video_audio(source, protocol, audio_path), protocol)
