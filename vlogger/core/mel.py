"""Log-mel features aligned to video frames: one definition for training, inference and eval.

Video frame k (at `fps`) owns mel rows [k*r, (k+1)*r) with r = sample_rate / (hop * fps)
(4 at 16 kHz, hop 160, 25 fps): row t is centred on sample t*hop.
The mel filterbank is written here because torchaudio does not install beside the pinned
CPU torch; it follows the HTK mel scale, as torchaudio's default does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vlogger.core.spec import frame_rows


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_points(n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """(n_mels + 2,) evenly spaced mel values from f_min to f_max: the bins' edges and centres."""
    return torch.linspace(float(hz_to_mel(torch.tensor(f_min))), float(hz_to_mel(torch.tensor(f_max))), n_mels + 2)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters (n_fft // 2 + 1, n_mels) on the HTK mel scale."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    f_pts = mel_to_hz(mel_points(n_mels, f_min, f_max))
    down = (freqs[:, None] - f_pts[None, :-2]) / (f_pts[1:-1] - f_pts[:-2])
    up = (f_pts[None, 2:] - freqs[:, None]) / (f_pts[2:] - f_pts[1:-1])
    return torch.clamp(torch.minimum(down, up), min=0.0)


def warp_frequencies(mel: torch.Tensor, alpha: torch.Tensor, f_min: float, f_max: float) -> torch.Tensor:
    """Log-mel rows (B, T, n_mels) as if spoken by a vocal tract 1/alpha as long (B,): bin at f reads
    the input at f / alpha, interpolated between bins (VTLP, Jaitly & Hinton 2013), so a model
    trained on a few dozen speakers hears more of them. Bins past the input's range keep its edge."""
    n = mel.shape[-1]
    m_pts = mel_points(n, f_min, f_max)
    centres = mel_to_hz(m_pts[1:-1]).to(mel.device)
    source = hz_to_mel(centres[None] / alpha[:, None])  # (B, n_mels) mel of the frequency each bin reads
    pos = ((source - m_pts[1]) / (m_pts[2] - m_pts[1])).clamp(0, n - 1)
    lo = pos.floor().long().clamp(max=n - 2)
    frac = (pos - lo)[:, None].to(mel.dtype)
    lo = lo[:, None].expand(-1, mel.shape[1], -1)
    return mel.gather(-1, lo) * (1 - frac) + mel.gather(-1, lo + 1) * frac


class LogMel(nn.Module):
    """Audio (..., samples) -> log-mel (..., frames, n_mels), frames = samples // hop."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 80,
        f_min: float = 55.0,
        f_max: float = 7600.0,
    ):
        super().__init__()
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels = n_mels
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max), persistent=False)

    @classmethod
    def from_config(cls, features: dict, sample_rate: int) -> LogMel:
        return cls(sample_rate=sample_rate, **features)

    def rows_per_frame(self, fps: float) -> int:
        return frame_rows(self.sample_rate, self.hop_length, fps)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        lead = audio.shape[:-1]
        x = audio.reshape(-1, audio.shape[-1])
        spec = (
            torch.stft(
                x,
                self.n_fft,
                self.hop_length,
                self.win_length,
                self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            .abs()
            .pow(2)
        )
        mel = torch.matmul(spec.transpose(1, 2), self.fb)
        n = x.shape[-1] // self.hop_length
        return torch.log(mel[:, :n] + 1e-6).reshape(*lead, n, self.n_mels)

    def for_frames(self, audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
        """Log-mel of a clip's audio with exactly n_frames * rows_per_frame rows (float16)."""
        r = self.rows_per_frame(fps)
        n_samples = n_frames * r * self.hop_length
        x = torch.from_numpy(np.ascontiguousarray(audio[:n_samples], dtype=np.float32))
        x = torch.nn.functional.pad(x, (0, n_samples - x.shape[0]))
        with torch.no_grad():
            return self(x).numpy().astype(np.float16)


def centre_on_clip(mel: np.ndarray) -> np.ndarray:
    """A clip's feature rows minus their mean over the clip (float32; the mean in float64, which
    float16 shards would overflow): stage 1's `data.centre_audio: clip`."""
    return (mel - mel.mean(0, dtype=np.float64)).astype(np.float32)


def mel_window(mel: np.ndarray, start: int, n_frames: int, rows_per_frame: int, context: int = 0) -> np.ndarray:
    """Mel rows for video frames [start, start + n_frames) plus `context` frames either side.

    Rows outside the clip are filled with the clip's minimum (silence), so windows at the
    clip borders keep their shape.
    """
    lo = (start - context) * rows_per_frame
    hi = (start + n_frames + context) * rows_per_frame
    pad_lo, pad_hi = max(0, -lo), max(0, hi - len(mel))
    out = mel[max(0, lo) : min(len(mel), hi)]
    if pad_lo or pad_hi:
        out = np.pad(out, ((pad_lo, pad_hi), (0, 0)), constant_values=float(mel.min()))
    return out
