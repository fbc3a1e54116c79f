"""Wrappers around any denoiser, shared by both stages (k-diffusion's style): classifier-free
guidance and temporal outpainting. A stage supplies a function of its own network; these know
nothing of motion or frames.

Outpainting: the first window is sampled freely; every next window starts `window - overlap`
frames later and is conditioned on the last `overlap` frames already generated (the
known-prefix input the models were trained with), so consecutive windows agree where they meet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm

from vlogger.core.errors import UsageError
from vlogger.models.diffusion import Denoise

# x_t, t (B,), drop (B,) bool: rows whose conditioning is dropped -> predicted x0
ConditionalDenoise = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# start frame, known frames (window, ...) or None, known mask (window, 1, ...) or None -> window frames
SampleWindow = Callable[[int, torch.Tensor | None, torch.Tensor | None], torch.Tensor]


def classifier_free(denoise: ConditionalDenoise, scale: float) -> Denoise:
    """Guided x0 = uncond + scale * (cond - uncond). Both halves go through the network as one
    batch (rows B.. with their conditioning dropped); scale 1 is the conditional pass alone."""

    def guided(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        if scale == 1.0:
            return denoise(x_t, t, torch.zeros(b, dtype=torch.bool, device=x_t.device))
        drop = torch.arange(2 * b, device=x_t.device) >= b
        cond, uncond = denoise(torch.cat([x_t, x_t]), torch.cat([t, t]), drop).chunk(2)
        return uncond + scale * (cond - uncond)

    return guided


def rows_like(v: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """Conditioning `v` (B, ...) repeated to x's batch (k*B rows, as `classifier_free` sends)."""
    return None if v is None else v.repeat(len(x) // len(v), *[1] * (v.dim() - 1))


def window_of(x: torch.Tensor | None, start: int, window: int) -> torch.Tensor | None:
    """Rows [start, start + window) of x, the last row repeated where x ends first."""
    if x is None:
        return None
    part = x[start : start + window]
    return torch.cat([part, x[-1:].expand(window - len(part), *x.shape[1:])]) if len(part) < window else part


def window_starts(n_frames: int, window: int, overlap: int) -> list[int]:
    """Start frame of every window; the last one may run past the end (its inputs are padded)."""
    stride = window - overlap
    if stride <= 0:
        raise UsageError(f"overlap {overlap} must be smaller than the window {window}")
    starts = [0]
    while starts[-1] + window < n_frames:
        starts.append(starts[-1] + stride)
    return starts


@torch.no_grad()
def outpaint(
    sample_window: SampleWindow,
    n_frames: int,
    window: int,
    overlap: int,
    frame_shape: Sequence[int],
    device: torch.device | str,
    desc: str | None = None,
) -> torch.Tensor:
    """(n_frames, *frame_shape) from windows of `window` frames overlapping by `overlap`; each
    window after the first is given the overlapping frames already made (known, with a mask of
    ones over them). `desc` shows a progress bar over windows."""
    starts = window_starts(n_frames, window, overlap)
    out = torch.zeros(starts[-1] + window, *frame_shape, device=device)
    for i, s in enumerate(tqdm(starts, desc=desc, unit="window", disable=desc is None)):
        known = mask = None
        if i > 0 and overlap:
            known = out[s : s + window].clone()
            mask = torch.zeros(window, *[1] * len(frame_shape), device=device)
            mask[:overlap] = 1.0
        out[s : s + window] = sample_window(s, known, mask)
    return out[:n_frames]
