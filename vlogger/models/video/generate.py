"""Stage-2 frames for controls of any length (`vlogger.models.sampling.outpaint_windows`).

A clip model (phase `clip`) makes windows of `data.frames` frames, each after the first given
the last `guidance.overlap` frames made; a single-frame model (phase `single`) makes every
frame on its own (window 1, no overlap). A super-resolution model runs the same way, each
window also given its low-resolution frames.

`stream_frames` yields each window's new frames as soon as they are made and takes its
controls and low-resolution frames as chunks too, so a cascade of models (stage 2, then
super-resolution) streams: the first frames leave the last model after a few windows of each,
not after the whole video went through the first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from vlogger.models.diffusion import standard_noise
from vlogger.models.sampling import FrameSource, outpaint_windows


@torch.no_grad()
def stream_frames(
    module,
    reference: torch.Tensor,
    controls: torch.Tensor | Iterable[torch.Tensor],
    n_frames: int,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    lowres: torch.Tensor | Iterable[torch.Tensor] | None = None,
    desc: str | None = "stage 2",
) -> Iterator[torch.Tensor]:
    """Chunks (k, 3, S, S) in [-1, 1], n_frames in all, for a reference (3, S, S) and controls
    (n_frames, 14, S, S), whole or in chunks (and, for super-resolution, the low-resolution
    frames (n_frames, 3, s, s), whole or in chunks)."""
    clip = module.cfg["phase"] == "clip"
    window = module.cfg["data"]["frames"] if clip else 1
    overlap = module.cfg["guidance"]["overlap"] if clip else 0
    dev, size = module.device, (module.size, module.size)
    controls = FrameSource(controls, n_frames)
    lowres = None if lowres is None else FrameSource(lowres, n_frames)
    ref = reference.to(dev)[None]
    common = None  # one shared part of the starting noise for the whole video: windows continue each other
    if module.noise_correlation > 0:
        common = standard_noise((1, 1, 3, *size), generator, dev)

    def sample_window(start: int, known: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        ctrl = controls.window(start, window).to(dev)[None]
        low = None if lowres is None else module.upsample(lowres.window(start, window).to(dev)[None])
        if known is not None:
            known, mask = known[None], mask.expand(-1, 1, *size)[None]
        return module.sample(ref, ctrl, known, mask, generator, steps, guidance, low, common)[0]

    yield from outpaint_windows(sample_window, n_frames, window, overlap, (3, *size), dev, desc)


def generate_frames(
    module,
    reference: torch.Tensor,
    controls: torch.Tensor,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    lowres: torch.Tensor | None = None,
    desc: str | None = "stage 2",
) -> torch.Tensor:
    """(T, 3, S, S) frames in [-1, 1] for a reference (3, S, S) and controls (T, 14, S, S)
    (and, for super-resolution, the low-resolution frames (T, 3, s, s)): `stream_frames`, joined."""
    chunks = stream_frames(module, reference, controls, len(controls), generator, steps, guidance, lowres, desc)
    return torch.cat(list(chunks))
