"""Video probing, decoding at a fixed frame rate, and mp4 encoding.

Decord decodes (fast random access and scaled decode); PyAV probes, reads timestamps
without decoding, decodes what decord cannot, and encodes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from vlogger.core.errors import BadInput


@dataclass(frozen=True)
class VideoInfo:
    """What a container holds, read without decoding any frame."""

    path: str
    width: int
    height: int
    frame_times: np.ndarray  # presentation time of each frame, seconds from the first frame
    duration: float  # seconds, first frame start to last frame end
    start_time: float  # seconds, the first frame's pts in container time
    has_audio: bool

    @property
    def n_frames(self) -> int:
        return len(self.frame_times)

    @property
    def source_fps(self) -> float:
        return self.n_frames / self.duration if self.duration > 0 else 0.0


def probe(path: str | Path) -> VideoInfo:
    """Read stream layout and every frame's timestamp (demux only, no decode).

    Timestamps come from packets so variable-frame-rate files are resampled correctly.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, "unreadable path: not a regular file or does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInput(path, "no video stream (audio-only file?)")
            stream = container.streams.video[0]
            has_audio = bool(container.streams.audio)
            tb = float(stream.time_base)
            pts = [
                (p.pts if p.pts is not None else p.dts) * tb
                for p in container.demux(stream)
                if p.size > 0 and (p.pts is not None or p.dts is not None)
            ]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = float(stream.average_rate or stream.guessed_rate or 25)
    except BadInput:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise BadInput(path, f"cannot read container: {e}") from e
    if not pts:
        raise BadInput(path, "video stream has no frames")
    times = np.sort(np.asarray(pts, dtype=np.float64))
    start = float(times[0])
    times -= start
    last = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / rate
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        frame_times=times,
        duration=float(times[-1] + last),
        start_time=start,
        has_audio=has_audio,
    )


def resample_indices(frame_times: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """Source frame index shown at each output time k/fps (the frame on screen then)."""
    n_out = int(np.floor(duration * fps + 1e-6))
    t_out = np.arange(n_out) / fps
    idx = np.searchsorted(frame_times, t_out + 1e-6, side="right") - 1
    return np.clip(idx, 0, len(frame_times) - 1)


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) shrunk so the longest side is at most max_side, even numbers for codecs."""
    s = min(1.0, max_side / max(width, height))
    return max(2, round(width * s / 2) * 2), max(2, round(height * s / 2) * 2)


def read_frames(
    info: VideoInfo, indices: Sequence[int], size: tuple[int, int] | None = None, chunk: int = 64
) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames (H, W, 3) for the given source indices, in order.

    `size` = (w, h) decodes scaled. Decord first; PyAV when decord cannot open the file.
    """
    try:
        yield from _read_decord(info, indices, size, chunk)
    except _DecordUnavailable:
        yield from _read_pyav(info, indices, size)


class _DecordUnavailable(Exception):
    pass


def _read_decord(info: VideoInfo, indices: Sequence[int], size, chunk: int) -> Iterator[np.ndarray]:
    import decord

    kwargs = {"width": size[0], "height": size[1]} if size else {}
    try:
        vr = decord.VideoReader(info.path, ctx=decord.cpu(0), num_threads=1, **kwargs)
    except decord.DECORDError as e:
        raise _DecordUnavailable from e
    if len(vr) != info.n_frames:  # decord disagrees with the demuxer: trust PyAV
        raise _DecordUnavailable
    indices = list(indices)
    for i in range(0, len(indices), chunk):
        part = indices[i : i + chunk]
        uniq = sorted(set(part))
        try:
            batch = vr.get_batch(uniq).asnumpy()
        except decord.DECORDError as e:
            raise BadInput(info.path, f"cannot decode frames {uniq[0]}..{uniq[-1]}: {e}") from e
        lookup = {j: k for k, j in enumerate(uniq)}
        for j in part:
            yield batch[lookup[j]]


def _read_pyav(info: VideoInfo, indices: Sequence[int], size) -> Iterator[np.ndarray]:
    wanted = np.asarray(indices)
    kwargs = {"width": size[0], "height": size[1]} if size else {}
    pos = 0
    try:
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for order, frame in enumerate(container.decode(stream)):
                if pos >= len(wanted):
                    return
                if order < wanted[pos]:
                    continue
                img = frame.to_ndarray(format="rgb24", **kwargs)
                while pos < len(wanted) and wanted[pos] == order:
                    yield img
                    pos += 1
    except av.error.FFmpegError as e:
        raise BadInput(info.path, f"cannot decode video: {e}") from e
    if pos < len(wanted):
        raise BadInput(info.path, f"video ends early: decoded {pos} of {len(wanted)} frames")


class Mp4Writer:
    """RGB frames (and mono float audio) into an mp4, yuv420p, as they come. `fragmented`: a
    fragmented mp4 (movflags frag_keyframe+empty_moov, a fragment at least every second, the
    audio interleaved as the video advances) that a player or a pipe reads while it is
    written; the encoder and its settings are the same either way, so the decoded frames are
    too (the first fragment waits for the encoder's lookahead: about a second of frames)."""

    FRAGMENT_US = 1_000_000

    def __init__(
        self,
        target: str | Path | BinaryIO,
        fps: int,
        codec: str = "libx264",
        crf: int = 20,
        preset: str = "veryfast",
        audio: np.ndarray | None = None,
        sample_rate: int = 16000,
        *,
        fragmented: bool = False,
    ):
        options = {}
        if fragmented:
            options = {
                "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
                "frag_duration": str(self.FRAGMENT_US),
            }
        self.out = av.open(str(target) if isinstance(target, Path) else target, "w", format="mp4", options=options)
        self.fps, self.codec, self.crf, self.preset = fps, codec, crf, preset
        self.audio, self.sample_rate, self.fragmented = audio, sample_rate, fragmented
        self.video = self.sound = None
        self.frames = self.samples = 0  # written so far

    def write(self, frames: Sequence[np.ndarray] | np.ndarray) -> None:
        if self.video is None:  # the size comes with the first frame; every stream before the first packet
            h, w = frames[0].shape[:2]
            opts = {"crf": str(self.crf), "preset": self.preset}
            self.video = self.out.add_stream(self.codec, rate=self.fps, options=opts)
            self.video.width, self.video.height, self.video.pix_fmt = w, h, "yuv420p"
            if self.audio is not None:
                self.sound = self.out.add_stream("aac", rate=self.sample_rate, layout="mono")
        for img in frames:
            for packet in self.video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), "rgb24")):
                self.out.mux(packet)
        self.frames += len(frames)
        if self.fragmented and self.sound is not None:
            self._audio_until(self.frames * self.sample_rate // self.fps)

    def _audio_until(self, end: int | None) -> None:
        """Encode the recording's samples [written, end) (to its end when None), in whole
        1024-sample frames except at the very end."""
        step, stop = 1024, len(self.audio) if end is None else min(end, len(self.audio))
        while self.samples < stop and (end is None or self.samples + step <= stop):
            i = self.samples
            chunk = np.ascontiguousarray(self.audio[i : i + step], dtype=np.float32)[None]
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = self.sample_rate, i
            for packet in self.sound.encode(frame):
                self.out.mux(packet)
            self.samples += chunk.shape[1]

    def close(self) -> None:
        if self.video is not None:
            self.out.mux(self.video.encode())
            if self.sound is not None:
                self._audio_until(None)
                self.out.mux(self.sound.encode())
        self.out.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def encode_mp4(
    frames: Sequence[np.ndarray] | np.ndarray,
    fps: int,
    codec: str = "libx264",
    crf: int = 20,
    preset: str = "veryfast",
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> bytes:
    """Encode RGB frames (and optionally mono float audio) to mp4 bytes, yuv420p."""
    buf = io.BytesIO()
    with Mp4Writer(buf, fps, codec, crf, preset, audio, sample_rate) as writer:
        writer.write(frames)
    return buf.getvalue()


def decode_mp4_bytes(data: bytes) -> np.ndarray:
    """All frames of an in-memory mp4 as (T, H, W, 3) uint8."""
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def decode_frames(mp4: bytes, indices: Sequence[int]) -> np.ndarray:
    """Frames at the given indices (T, H, W, 3) uint8, decoding only up to the last one."""
    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    with av.open(io.BytesIO(mp4)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted[-1]:
                break
    missing = [i for i in wanted if i not in got]
    if missing:
        raise ValueError(f"clip has no frame {missing[0]} (truncated video member?)")
    return np.stack([got[i] for i in indices])
