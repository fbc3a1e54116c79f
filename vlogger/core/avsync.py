"""Weight-free audio-visual offset and sync confidence, calibrated against a null.

SyncNet needs weights; this signal needs none. It correlates how fast the mouth opens
(tracked inner-lip gap over face height) with how fast the energy of a few mel bands
changes, at every offset in [-window, window]. Velocities rather than levels, and several
bands rather than loudness, because a plain opening-vs-loudness correlation is dominated by
slow co-variation and peaks 7-15 frames off on real, in-sync clips.

Sign: a positive offset means the mouth moves `offset` frames AFTER the sound. Real
speech sits slightly negative (articulation leads the acoustics by 1-3 frames).

The best correlation over 2 x window + 1 offsets is positive even for unrelated audio (the
maximum of noise), and by how much depends on the clip's length (about 1/sqrt(T)). So the
confidence is that peak minus its mean under a null: the same peak computed against
`null_draws` phase-randomised copies of the audio velocities (same power spectrum, so the same
autocorrelation, but no alignment with the mouth; one seeded draw of phases shared by all
bands). Unlike circular shifts, these stay unrelated however short the clip is next to the
window. `z` divides by the null's spread. Offset and confidence use the same window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vlogger.core.mel import LogMel


@dataclass(frozen=True)
class SyncSettings:
    """The sync signal's settings. Preprocessing and evaluation each pass their own (preprocess
    config `sync`, protocol `avsync`) to the one function, so neither reads the other's config."""

    window: int  # offsets searched either way, frames, for the offset and the confidence alike
    smooth_sigma: float  # Gaussian smoothing (frames) before differentiating
    mel_bands: tuple[tuple[int, int], ...]  # mel-row ranges whose mean energies are correlated
    null_draws: int  # phase-randomised audio copies the null peak is averaged over
    null_seed: int

    @classmethod
    def from_config(cls, cfg: dict) -> SyncSettings:
        d = {**cfg, "mel_bands": tuple(tuple(b) for b in cfg["mel_bands"])}
        return cls(**d)


def band_energies(audio: np.ndarray, n_frames: int, fps: float, bands, mel: LogMel) -> np.ndarray:
    """(n_frames, n_bands) mean log-mel energy of each band per video frame."""
    rows = mel.for_frames(audio, n_frames, fps).astype(np.float32)
    per_frame = rows.reshape(n_frames, -1, rows.shape[1]).mean(1)
    return np.stack([per_frame[:, lo:hi].mean(1) for lo, hi in bands], axis=1)


def velocity(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.gradient(gaussian_filter1d(x.astype(np.float64), sigma, axis=0), axis=0)


def sync_curve(mouth_vel: np.ndarray, audio_vel: np.ndarray, window: int) -> np.ndarray:
    """Mean over bands of the Pearson correlation at each offset k in [-W, W] (k > 0: mouth later).

    audio_vel (T, bands) gives (2W+1,); a stack (D, T, bands) gives (D, 2W+1), one curve per copy."""
    n = min(len(mouth_vel), audio_vel.shape[-2])
    v, a = mouth_vel[:n], audio_vel[..., :n, :]
    out = np.zeros((*a.shape[:-2], 2 * window + 1))
    for i, k in enumerate(range(-window, window + 1)):
        x = v[max(k, 0) : n + min(k, 0)]
        y = a[..., max(-k, 0) : n + min(-k, 0), :]
        if len(x) < 3 or x.std() < 1e-9:
            continue
        sy = y.std(-2)
        ok = sy > 1e-9
        xz = (x - x.mean()) / x.std()
        yz = (y - y.mean(-2, keepdims=True)) / np.where(ok, sy, 1.0)[..., None, :]
        corr = np.einsum("t,...tb->...b", xz, yz) / len(x)
        out[..., i] = np.where(ok, corr, 0.0).sum(-1) / np.maximum(ok.sum(-1), 1)
    return out


def phase_surrogates(x: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """(draws, T, bands) copies of x (T, bands) with the same amplitude spectrum per band and random
    phases (one draw shared by the bands, so their cross-spectrum is kept too)."""
    n = len(x)
    spec = np.fft.rfft(x - x.mean(0), axis=0)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, (draws, len(spec), 1))
    phase[:, 0] = 0.0  # the mean stays real
    if n % 2 == 0:
        phase[:, -1] = 0.0  # so does the Nyquist term
    return np.fft.irfft(spec[None] * np.exp(1j * phase), n=n, axis=1) + x.mean(0)


@dataclass(frozen=True)
class SyncResult:
    offset: float  # frames, NaN when the mouth does not move
    confidence: float  # peak correlation minus its null mean (~0 for unrelated audio at any length)
    z: float  # confidence / the null peak's std
    peak: float  # the uncalibrated best correlation within the window
    null_mean: float
    null_std: float
    curve: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def sync_from_velocities(mouth_vel: np.ndarray, audio_vel: np.ndarray, s: SyncSettings) -> SyncResult:
    """The calibrated score of a mouth velocity (T,) against band velocities (T, bands)."""
    n = min(len(mouth_vel), len(audio_vel))
    mouth_vel, audio_vel = mouth_vel[:n], audio_vel[:n]
    curve = sync_curve(mouth_vel, audio_vel, s.window)
    if np.allclose(curve, 0):
        return SyncResult(float("nan"), 0.0, 0.0, 0.0, 0.0, 0.0, curve.tolist())
    null = sync_curve(mouth_vel, phase_surrogates(audio_vel, s.null_draws, s.null_seed), s.window).max(-1)
    peak, mean, std = float(curve.max()), float(null.mean()), float(null.std())
    z = (peak - mean) / std if std > 1e-12 else 0.0
    return SyncResult(float(np.argmax(curve) - s.window), peak - mean, z, peak, mean, std, curve.tolist())


def av_sync(
    mouth: np.ndarray, audio: np.ndarray, fps: float, settings: SyncSettings, mel: LogMel | None = None
) -> SyncResult:
    """Offset, calibrated confidence and the whole curve for one video (`landmarks.lip_opening` per frame)."""
    mel = mel or LogMel()
    bands = band_energies(audio, len(mouth), fps, settings.mel_bands, mel)
    sigma = settings.smooth_sigma
    return sync_from_velocities(velocity(mouth, sigma), velocity(bands, sigma), settings)
