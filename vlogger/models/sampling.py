"""Wrappers around any denoiser, shared by both stages (k-diffusion's style): classifier-free
guidance and temporal outpainting. A stage supplies a function of its own network; these know
nothing of motion or frames.

Outpainting: the first window is sampled freely; every next window starts `window - overlap`
frames later and is conditioned on the last `overlap` frames already generated (the
known-prefix input the models were trained with), so consecutive windows agree where they meet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

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


class FrameSource:
    """Rows of a sequence of known length that arrives in chunks (an iterator, e.g. a renderer's
    or the previous model's output): `window(start, n)` is `window_of` on the whole sequence,
    pulling only the chunks it needs. Starts must not decrease; rows before the last start are
    dropped, so a long video never sits in memory whole."""

    def __init__(self, chunks: torch.Tensor | Iterable[torch.Tensor], length: int):
        self.chunks = iter([chunks] if isinstance(chunks, torch.Tensor) else chunks)
        self.length, self.offset = length, 0
        self.rows: torch.Tensor | None = None

    def window(self, start: int, window: int) -> torch.Tensor:
        if start < self.offset:
            raise ValueError(f"window at {start} after one at {self.offset}: windows come in order")
        need = min(start + window, self.length) - self.offset
        while self.rows is None or len(self.rows) < need:
            chunk = next(self.chunks, None)
            if chunk is None:
                raise ValueError(f"the frames end at {self.offset + len(self.rows)} of {self.length}")
            self.rows = chunk if self.rows is None else torch.cat([self.rows, chunk])
        self.rows, self.offset = self.rows[start - self.offset :], start
        return window_of(self.rows[: min(window, self.length - start)], 0, window)


@torch.no_grad()
def outpaint_windows(
    sample_window: SampleWindow,
    n_frames: int,
    window: int,
    overlap: int,
    frame_shape: Sequence[int],
    device: torch.device | str,
    desc: str | None = None,
) -> Iterator[torch.Tensor]:
    """n_frames frames from windows of `window` frames overlapping by `overlap`, each window
    after the first given the overlapping frames already made (known, with a mask of ones over
    them); yielded window by window as soon as they are final: the first window's frames, then
    each next window's new ones, up to `n_frames` in all (join them for the whole sequence).
    Only the last `overlap` frames are kept between windows. `desc` shows a progress bar."""
    starts = window_starts(n_frames, window, overlap)
    tail = None  # the previous window's last `overlap` frames
    for i, s in enumerate(tqdm(starts, desc=desc, unit="window", disable=desc is None)):
        known = mask = None
        if i > 0 and overlap:
            known = torch.cat([tail, torch.zeros(window - overlap, *frame_shape, device=device, dtype=tail.dtype)])
            mask = torch.zeros(window, *[1] * len(frame_shape), device=device)
            mask[:overlap] = 1.0
        frames = sample_window(s, known, mask)
        tail = frames[window - overlap :]
        first = s if i == 0 or not overlap else s + overlap
        new = frames if first == s else frames[overlap:]
        if first < n_frames:
            yield new[: n_frames - first]
