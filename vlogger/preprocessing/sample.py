"""Deterministic synthetic talking-person clips for the demo and the tests.

A fresh clone has no data, yet `make demo` and the tests need real mp4 files whose
audio and mouth move together. The scikit-image astronaut photo (shipped with the
package, no download) is made to "talk": a speech-like signal is synthesised, its
envelope opens her mouth frame by frame, and a slow rigid head motion is added so the
tracker has something to follow. The envelope is saved as `<stem>.drive.npy`, the
ground truth a lip-sync check can be scored against.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import butter, lfilter, sosfilt
from skimage import data

from vlogger.core.errors import UsageError

SAMPLE_RATE = 16000
AAC_FRAME = 1024  # samples per AAC frame
SOURCE_SIZE = 512

# Landmarks of skimage.data.astronaut() in pixels of the 512x512 image, measured once with
# mediapipe FaceMesh(static_image_mode=True, refine_landmarks=True) (indices in comments);
# hardcoded so that making a sample does not need mediapipe.
UPPER_INNER_LIP = (223.5, 143.2)  # 13
LOWER_INNER_LIP = (223.0, 150.1)  # 14
MOUTH_LEFT = (201.8, 139.2)  # 61
MOUTH_RIGHT = (245.0, 141.0)  # 291
CHIN = (221.3, 177.4)  # 152
# Not a landmark: the head turns about a point in the neck, about 0.7 face heights below the chin.
NECK_PIVOT = (222.0, 250.0)

TEETH_TO_LOWER_LIP = 1.5  # px at 512: the upper teeth end just above landmark 14
MAX_JAW_DROP = 12.0  # px at 512: lower lip and chin move down this far when the drive is 1
# (x0, y0, x1, y1) px at 512, before head motion: outside it the jaw drop moves nothing by over
# 0.05 px (3.3 sigma of its widest Gaussian across, 3.5 sigma of the neck fade below the dropped chin).
JAW_REGION = (105.0, 130.0, 341.0, 232.0)
MOUTH_COLOUR = np.array([45.0, 16.0, 18.0], dtype=np.float32)  # dark red of the inner mouth, RGB

# Peterson & Barney style vowel formants (F1, F2, F3) in Hz: enough variety that
# syllables sound different and the spectrum moves.
VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]],
    dtype=np.float64,
)
FORMANT_BANDWIDTHS = (90.0, 110.0, 170.0)
FORMANT_GAINS = (1.0, 0.7, 0.4)


def make_sample(
    out_dir: Path, n_clips: int = 2, seconds: float = 6.0, fps: int = 25, size: int = 512, seed: int = 0
) -> list[Path]:
    """Write n_clips mp4 files (h264 video yuv420p + AAC audio 16 kHz mono, via PyAV) of the
    scikit-image astronaut photo talking, plus for each clip a `<stem>.drive.npy` float32 array
    (one value per video frame, in [0, 1]) = the mouth-opening driving signal. Returns the mp4 paths."""
    if size % 2:
        raise UsageError(f"size must be even for yuv420p, got {size}")
    if seconds < 0.5:
        raise UsageError(f"seconds must be at least 0.5 to hold a syllable, got {seconds}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image, scale = _source_image(size)
    n_frames = round(seconds * fps)
    paths = []
    for i in range(n_clips):
        rng = np.random.default_rng(seed + i)
        audio = synth_speech(n_frames / fps, rng)
        drive = drive_signal(audio, n_frames, fps)
        frames = (_render_frame(image, scale, d, m) for d, m in zip(drive, head_motion(drive, fps, rng), strict=True))
        path = out_dir / f"astronaut_{seed + i:03d}.mp4"
        _write_mp4(path, frames, n_frames, _fit_aac_frames(audio), fps, size)
        np.save(path.with_suffix(".drive.npy"), drive)
        paths.append(path)
    return paths


# --- audio ---------------------------------------------------------------------------------------


def synth_speech(seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Speech-like mono float32: formant-filtered voicing under a syllable envelope, plus fricative noise.

    Not intelligible, but it has what audio features key on: a pitched source, moving
    formants, a 3-5 Hz syllable rhythm and pauses, so it exercises the audio encoders.
    """
    n = round(seconds * sr)
    syllables = _plan_syllables(seconds, rng)
    t = np.arange(n) / sr
    voiced = _formant_filter(_glottal_source(t, rng, sr) * _syllable_envelope(t, syllables), t, syllables, sr)
    noise = sosfilt(butter(4, 2500, "highpass", fs=sr, output="sos"), rng.standard_normal(n))
    audio = voiced / np.abs(voiced).max() + 0.25 * noise * _fricative_envelope(t, syllables, rng)
    audio += 0.002 * rng.standard_normal(n)  # room noise, so silence is not digital zero
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def _plan_syllables(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Rows of (start s, duration s, loudness, F1, F2, F3 Hz): phrases of 4-8 syllables split by pauses."""
    rows = []
    t = rng.uniform(0.1, 0.3)
    while True:
        for _ in range(rng.integers(4, 9)):
            dur = min(rng.uniform(0.12, 0.30), seconds - 0.05 - t)  # the clip ends 50 ms after the speech
            if dur < 0.1:
                return np.array(rows)
            formants = VOWELS[rng.integers(len(VOWELS))] * rng.uniform(0.95, 1.05, 3)
            rows.append((t, dur, rng.uniform(0.5, 1.0), *formants))
            t += dur + rng.uniform(0.0, 0.04)
        t += rng.uniform(0.2, 0.5)


def _syllable_envelope(t: np.ndarray, syllables: np.ndarray) -> np.ndarray:
    """Sum of rise-and-fall bumps, one per syllable; zero in the gaps and pauses."""
    env = np.zeros_like(t)
    for start, dur, loud, *_ in syllables:
        u = np.clip((t - start) / dur, 0.0, 1.0)
        env += loud * np.sin(np.pi * u) ** 0.6
    return env


def _fricative_envelope(t: np.ndarray, syllables: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Short noise bursts at about a third of syllable onsets (an 's' or 'f' before the vowel)."""
    env = np.zeros_like(t)
    for start, *_ in syllables:
        if rng.random() < 0.35:
            dur = rng.uniform(0.05, 0.09)
            u = np.clip((t - start + 0.7 * dur) / dur, 0.0, 1.0)
            env += np.sin(np.pi * u) ** 2
    return env


def _glottal_source(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Band-limited sawtooth-like harmonic source; f0 glides over 100-220 Hz with jitter."""
    knots = np.arange(0.0, t[-1] + 0.3, 0.3)
    f0 = gaussian_filter1d(np.interp(t, knots, rng.uniform(110, 210, len(knots))), sigma=0.05 * sr)
    jitter = gaussian_filter1d(rng.standard_normal(len(t)), sigma=0.002 * sr)
    f0 *= 1.0 + 0.01 * jitter / jitter.std()
    phase = 2 * np.pi * np.cumsum(f0) / sr
    src = np.zeros_like(t)
    for k in range(1, int(0.95 * (sr / 2) / f0.max()) + 1):
        src += np.sin(k * phase) / k
    return src


def _formant_filter(x: np.ndarray, t: np.ndarray, syllables: np.ndarray, sr: int, block: int = 160) -> np.ndarray:
    """Parallel two-pole resonators whose centre frequencies glide between syllable vowels.

    Filtered in 10 ms blocks, carrying each filter's state across blocks, so the
    coefficients can change smoothly without clicks.
    """
    centres = syllables[:, 0] + syllables[:, 1] / 2
    y = np.zeros_like(x)
    for f, (bw, gain) in enumerate(zip(FORMANT_BANDWIDTHS, FORMANT_GAINS, strict=True)):
        r = np.exp(-np.pi * bw / sr)
        state = np.zeros(2)
        for s in range(0, len(x), block):
            freq = np.interp(t[s], centres, syllables[:, 3 + f])
            a = [1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r]
            y[s : s + block], state = lfilter([gain * (1.0 - r)], a, x[s : s + block], zi=state)
    return y


def _frame_edges(n_frames: int, fps: int, sr: int) -> np.ndarray:
    """Audio sample index where each video frame starts, plus the end of the last one."""
    return np.round(np.arange(n_frames + 1) * sr / fps).astype(int)


def drive_signal(audio: np.ndarray, n_frames: int, fps: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Per-frame mouth opening in [0, 1]: RMS over each frame's own time window, lightly smoothed.

    The window of frame k is [k/fps, (k+1)/fps) and the smoothing kernel is symmetric,
    so the opening has no time offset from the sound.
    """
    edges = _frame_edges(n_frames, fps, sr)
    rms = np.sqrt(np.add.reduceat(audio.astype(np.float64) ** 2, edges[:-1]) / np.diff(edges))
    smooth = np.convolve(np.pad(rms, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)


# --- video ---------------------------------------------------------------------------------------


def head_motion(drive: np.ndarray, fps: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of (angle deg, dx px at 512, dy px at 512): slow sways, part following the speech energy."""
    t = np.arange(len(drive)) / fps
    slow = gaussian_filter1d(drive.astype(np.float64), sigma=0.4 * fps, mode="nearest")
    slow = (slow - slow.mean()) / (np.abs(slow - slow.mean()).max() + 1e-9)
    freq, phase = rng.uniform(0.12, 0.3, 3), rng.uniform(0, 2 * np.pi, 3)
    sway = np.sin(2 * np.pi * freq * t[:, None] + phase)
    angle = 2.0 * (0.5 * slow + 0.5 * sway[:, 0])
    dx = 3.0 * sway[:, 1]
    dy = 2.0 * (0.6 * slow + 0.4 * sway[:, 2])
    return np.stack([angle, dx, dy], axis=1)


def _source_image(size: int) -> tuple[np.ndarray, float]:
    """The astronaut at the output size, and the factor from 512-px coordinates to it."""
    image = data.astronaut()
    if size != SOURCE_SIZE:
        interp = cv2.INTER_AREA if size < SOURCE_SIZE else cv2.INTER_CUBIC
        image = cv2.resize(image, (size, size), interpolation=interp)
    return image, size / SOURCE_SIZE


def _render_frame(image: np.ndarray, scale: float, drive: float, motion: np.ndarray) -> np.ndarray:
    """One RGB frame: jaw dropped by `drive`, then the whole picture moved rigidly, in a single remap."""
    h, w = image.shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = _undo_head_motion(u, v, motion, scale)
    window = _jaw_window(motion, scale, h, w)
    drop, dark = _jaw_drop(x[window], y[window], drive * MAX_JAW_DROP * scale, scale)
    y[window] -= drop
    frame = cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    frame[window] += dark[..., None] * (MOUTH_COLOUR - frame[window])
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _undo_head_motion(u: np.ndarray, v: np.ndarray, motion: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel was before the head turned about the neck and shifted."""
    angle, dx, dy = motion
    cx, cy = NECK_PIVOT[0] * scale, NECK_PIVOT[1] * scale
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    px, py = u - cx - dx * scale, v - cy - dy * scale
    return (c * px + s * py + cx).astype(np.float32), (-s * px + c * py + cy).astype(np.float32)


def _jaw_window(motion: np.ndarray, scale: float, h: int, w: int) -> tuple[slice, slice]:
    """Output rows and columns that JAW_REGION lands on after the head motion.

    The jaw is only evaluated there: a tenth of the frame, which makes rendering fast.
    """
    angle, dx, dy = motion
    cx, cy = NECK_PIVOT[0] * scale, NECK_PIVOT[1] * scale
    c, s = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    x0, y0, x1, y1 = (v * scale - p for v, p in zip(JAW_REGION, (cx, cy, cx, cy), strict=True))
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
    xs = c * corners[:, 0] - s * corners[:, 1] + cx + dx * scale
    ys = s * corners[:, 0] + c * corners[:, 1] + cy + dy * scale
    rows = slice(max(int(ys.min()) - 1, 0), min(int(ys.max()) + 2, h))
    return rows, slice(max(int(xs.min()) - 1, 0), min(int(xs.max()) + 2, w))


def _smoothstep(u: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, with zero slope at both ends so blends leave no visible seam."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _jaw_drop(x: np.ndarray, y: np.ndarray, drop: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Downward displacement (output coordinates) and inner-mouth darkness for a jaw drop of `drop` px.

    The upper lip and teeth stay put; the lower lip and chin move down together, and
    below the chin the shift fades over the neck. The gap opens along the smiling lip
    line (a parabola through the corners), where a linear ramp stretches it without
    folding (slope < 1); the gap is painted dark as it grows, since the photo has no inner
    mouth to reveal.
    """
    xc = (UPPER_INNER_LIP[0] + LOWER_INNER_LIP[0]) / 2 * scale
    y_chin = CHIN[1] * scale
    half_mouth = (MOUTH_RIGHT[0] - MOUTH_LEFT[0]) / 2 * scale
    y_corner = (MOUTH_LEFT[1] + MOUTH_RIGHT[1]) / 2 * scale
    lip_line = LOWER_INNER_LIP[1] * scale - (LOWER_INNER_LIP[1] * scale - y_corner) * ((x - xc) / half_mouth) ** 2
    y_teeth = np.maximum(lip_line, y_corner) - TEETH_TO_LOWER_LIP * scale
    # Narrow at the lips (corners stay put), as wide as the jaw from the chin down.
    width = half_mouth * (0.6 + _smoothstep((y - lip_line) / (y_chin - lip_line)))
    across = np.exp(-0.5 * ((x - xc) / width) ** 2)
    lip_drop = drop * np.exp(-0.5 * ((x - xc) / (0.6 * half_mouth)) ** 2)
    # The gap closes at the corners; beyond them the skin is stretched over twice the drop instead.
    opening = lip_drop * np.clip(1.0 - ((x - xc) / half_mouth) ** 2, 0.0, 1.0)
    u = (y - y_teeth) / (TEETH_TO_LOWER_LIP * scale + 2.0 * lip_drop - opening)
    neck_fade = np.exp(-0.5 * (np.maximum(y - y_chin - drop, 0.0) / (0.3 * (y_chin - y_corner))) ** 2)
    shift = drop * across * np.clip(u, 0.0, 1.0) * neck_fade
    between = _smoothstep(u / 0.1) * _smoothstep((1.0 - u) / 0.3)
    dark = 0.95 * between * opening / (opening + 1.5 * scale)
    return shift.astype(np.float32), dark.astype(np.float32)


def _fit_aac_frames(audio: np.ndarray) -> np.ndarray:
    """Cut or pad (by at most half an AAC frame, 32 ms) to whole AAC frames.

    Decoders return the encoder's padding of the last frame, so a length in whole
    frames makes the decoded audio exactly as long as the container says; the synthetic
    speech ends at least 50 ms before the clip does, so only room noise is cut.
    """
    n = max(AAC_FRAME, round(len(audio) / AAC_FRAME) * AAC_FRAME)
    return np.pad(audio, (0, max(n - len(audio), 0)))[:n]


def _write_mp4(path: Path, frames: Iterable[np.ndarray], n_frames: int, audio: np.ndarray, fps: int, size: int) -> None:
    """Mux h264 video and AAC audio, interleaved frame by frame, each with explicit pts."""
    edges = np.minimum(_frame_edges(n_frames, fps, SAMPLE_RATE), len(audio))
    edges[-1] = len(audio)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "veryfast", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = size, size, "yuv420p"
        aus = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for k, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = k, Fraction(1, fps)
            out.mux(vs.encode(vf))
            if edges[k + 1] > edges[k]:
                out.mux(aus.encode(_audio_frame(audio[edges[k] : edges[k + 1]], int(edges[k]))))
        out.mux(vs.encode())
        out.mux(aus.encode())


def _audio_frame(samples: np.ndarray, start: int) -> av.AudioFrame:
    """Mono float samples as a PyAV frame stamped with its position in the clip."""
    mono = np.ascontiguousarray(samples[None], dtype=np.float32)
    frame = av.AudioFrame.from_ndarray(mono, format="flt", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
    return frame
