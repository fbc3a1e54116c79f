"""Audio decode to mono float at a fixed rate (PyAV / libswresample), and FLAC bytes."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from vlogger.core.errors import BadInput


def load_audio(path: str | Path, sample_rate: int = 16000, start_time: float | None = None) -> np.ndarray:
    """Decode the first audio stream to mono float32 at `sample_rate`.

    With `start_time` (seconds, container clock; the first video frame's pts) the result
    is aligned so sample 0 plays with the first video frame: leading samples are dropped
    or silence is padded by the streams' start offset.
    """
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise BadInput(path, "no audio track")
            stream = container.streams.audio[0]
            first_pts = None
            for frame in container.decode(stream):
                if first_pts is None and frame.pts is not None:
                    first_pts = float(frame.pts * stream.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except BadInput:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise BadInput(path, f"cannot decode audio: {e}") from e
    if not chunks:
        raise BadInput(path, "audio track is empty")
    audio = np.concatenate(chunks).astype(np.float32)
    if start_time is not None and first_pts is not None:
        shift = round((first_pts - start_time) * sample_rate)
        audio = np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
    return audio


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to exactly n samples."""
    return audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))


def to_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def from_flac(data: bytes) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    return audio, sr
