"""A ridge line from audio feature rows (each frame with its context) to the jaw, fitted in closed form.

On minutes of training speech, a linear map of the rows around each frame, fitted with one strong
penalty on standardised features, predicts a new person's jaw better than stage 1's diffusion
network learns to on its own (held-out r 0.57 against 0.44, benchmarks/RESULTS.md, issue 17): the
closed form shrinks every feature alike, SGD on a small set overfits what it can reach.
`benchmarks.jaw_linear` measures the line; stage 1 takes it as one more input (`model.jaw_prior`).
"""

from __future__ import annotations

import numpy as np
import torch

from vlogger.core.mel import centre_on_clip


def frame_context(frames: torch.Tensor, context: int) -> torch.Tensor:
    """(B, T, F) per-frame features -> (B, T - 2c, (2c + 1)·F): each inner frame beside `context`
    frames either side, the earliest first."""
    k = 2 * context + 1
    b, t, f = frames.shape
    return frames.unfold(1, k, 1).permute(0, 1, 3, 2).reshape(b, t - 2 * context, k * f)


def clip_features(rows: np.ndarray, n_frames: int, rows_per_frame: int, context: int) -> np.ndarray:
    """A clip's feature rows (>= n·r, C) -> (n, (2c + 1)·r·C): centred on the clip's mean as stage 1
    centres them (`data.centre_audio: clip`), zero beyond the clip's ends."""
    per_frame = centre_on_clip(rows[: n_frames * rows_per_frame]).astype(np.float64).reshape(n_frames, -1)
    padded = np.pad(per_frame, ((context, context), (0, 0)))
    return frame_context(torch.from_numpy(padded)[None], context)[0].numpy()


def fit_ridge(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """Weights (F,) and bias on the raw features x (frames, F) for the target y (frames,): ridge
    with `strength` on features standardised over x, folded back into raw units and scaled so the
    line has unit spread over x (its values then sit where a network's inputs do)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xn = (x - mu) / sd
    w = np.linalg.solve(xn.T @ xn + strength * np.eye(xn.shape[1]), xn.T @ (y - y.mean()))
    scale = float((xn @ w).std()) or 1.0
    w = w / sd / scale
    return w, float(-(mu @ w))
