"""Cut a span out of a source video, crop and resize it, re-encode: one clip file (PyAV).

PyAV because it is already the toolkit's video I/O (no ffmpeg binary needed) and it streams:
a 1080p source is decoded frame by frame, never held in memory. Output frames are picked by
timestamp (the frame on screen at start + k/fps), so variable-frame-rate sources keep their
timing; audio is cut to the same span from the same clock (the video stream's first frame is
time 0, as in `vlogger.core.audio.load_audio`), or from a separate audio file that starts at 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vlogger.core.errors import BadInput
from vlogger.preprocessing.recipes.spec import Crop

_EPS = 1e-6


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    fps: float
    duration: float  # seconds from the first video frame


def source_info(path: Path) -> SourceInfo:
    """Size, frame rate and length of a video, from the container (no decoding)."""
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise BadInput(path, "no video stream")
            vs = c.streams.video[0]
            rate = float(vs.average_rate or vs.guessed_rate or 25)
            if vs.duration is not None:
                duration = float(vs.duration * vs.time_base)
            elif c.duration is not None:
                duration = c.duration / av.time_base
            else:
                raise BadInput(path, "container states no duration")
            return SourceInfo(vs.codec_context.width, vs.codec_context.height, rate, duration)
    except av.error.FFmpegError as e:
        raise BadInput(path, f"cannot read container: {e}") from e


def cut(
    video: Path,
    audio: Path | None,
    dest: Path,
    span: tuple[float, float],
    crop: Crop | None,
    size: int,
    encode: dict,
) -> dict:
    """Write dest (via dest.part, renamed when complete); returns what was written.

    `size` > 0 resizes a cropped clip to size x size; full frames keep their size."""
    start, end = span
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            av.open(str(video)) as src,
            av.open(str(audio or video)) as asrc,
            av.open(str(part), "w", format="mp4") as out,
        ):
            vs = src.streams.video[0]
            vs.thread_type = "AUTO"
            rate = Fraction(vs.average_rate or vs.guessed_rate or 25).limit_denominator(1001)
            w, h = vs.codec_context.width, vs.codec_context.height
            box = crop.pixels(w, h) if crop else (0, 0, w // 2 * 2, h // 2 * 2)
            if min(box[2] - box[0], box[3] - box[1]) < 16:
                raise BadInput(video, f"crop window {box} is (almost) outside the {w}x{h} frame")
            out_w, out_h = (size, size) if crop and size else (box[2] - box[0], box[3] - box[1])
            ovs = out.add_stream(
                encode["codec"], rate=rate, options={"crf": str(encode["crf"]), "preset": encode["preset"]}
            )
            ovs.width, ovs.height, ovs.pix_fmt = out_w, out_h, "yuv420p"
            t0 = float((vs.start_time or 0) * vs.time_base)
            a_in = asrc.streams.audio[0] if asrc.streams.audio else None
            oas = None
            if a_in is not None:
                layout = "stereo" if a_in.codec_context.channels >= 2 else "mono"
                oas = out.add_stream("aac", rate=a_in.codec_context.sample_rate, layout=layout)
            frames = _cut_video(src, vs, out, ovs, t0 + start, round((end - start) * rate), rate, box, (out_w, out_h))
            samples = 0
            if oas is not None:
                a0 = t0 if audio is None else float((a_in.start_time or 0) * a_in.time_base)
                samples = _cut_audio(asrc, a_in, out, oas, a0 + start, a0 + end)
    except av.error.FFmpegError as e:
        part.unlink(missing_ok=True)
        raise BadInput(video, f"cannot cut {start:.2f}-{end:.2f} s: {e}") from e
    except BadInput:
        part.unlink(missing_ok=True)
        raise
    if frames == 0:
        part.unlink(missing_ok=True)
        raise BadInput(video, f"no frame decoded in {start:.2f}-{end:.2f} s")
    os.replace(part, dest)
    sr = oas.rate if oas is not None else 0
    return {
        "frames": frames,
        "fps": round(float(rate), 3),
        "width": out_w,
        "height": out_h,
        "seconds": round(frames / float(rate), 3),
        "audio_seconds": round(samples / sr, 3) if sr else 0.0,
    }


def _cut_video(src, vs, out, ovs, t_start: float, n: int, rate: Fraction, box, size) -> int:
    """Encode the frames on screen at t_start + k/rate, k < n; returns how many were written."""
    src.seek(max(0, int((t_start - 1.0) / vs.time_base)), stream=vs, backward=True)
    x0, y0, x1, y1 = box
    k, last = 0, None

    def emit(frame) -> None:
        nonlocal k
        img = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[y0:y1, x0:x1])
        f = av.VideoFrame.from_ndarray(img, "rgb24").reformat(width=size[0], height=size[1], format="yuv420p")
        f.pts = k
        for packet in ovs.encode(f):
            out.mux(packet)
        k += 1

    for frame in src.decode(vs):
        t = float(frame.pts * vs.time_base)
        while k < n and t_start + k / rate < t - _EPS:
            emit(last or frame)
        last = frame
        if k >= n:
            break
    while last is not None and k < n:  # the span's end lies in the last frame's display time
        emit(last)
    for packet in ovs.encode():
        out.mux(packet)
    return k


def _cut_audio(src, a_in, out, oas, t_start: float, t_end: float) -> int:
    """Encode the samples in [t_start, t_end) of the audio stream; returns how many."""
    sr = a_in.codec_context.sample_rate
    src.seek(max(0, int((t_start - 1.0) / a_in.time_base)), stream=a_in, backward=True)
    resampler = av.AudioResampler(format="fltp", layout=oas.layout.name, rate=sr)
    first, last = round(t_start * sr), round(t_end * sr)
    chunks, pos = [], None
    for frame in src.decode(a_in):
        if pos is None:
            pos = round(float(frame.pts * a_in.time_base) * sr)
        for r in resampler.resample(frame):
            arr = r.to_ndarray()
            lo, hi = max(first - pos, 0), min(last - pos, arr.shape[1])
            if hi > lo:
                chunks.append(arr[:, lo:hi])
            pos += arr.shape[1]
        if pos >= last:
            break
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((len(oas.layout.channels), 0), np.float32)
    step = 1024
    for i in range(0, audio.shape[1], step):
        f = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio[:, i : i + step]), format="fltp", layout=oas.layout.name
        )
        f.sample_rate, f.pts = sr, i
        for packet in oas.encode(f):
            out.mux(packet)
    for packet in oas.encode():
        out.mux(packet)
    return audio.shape[1]
