"""Stage-2 frames for controls of any length (`vlogger.models.sampling.outpaint`).

A clip model (phase `clip`) makes windows of `data.frames` frames, each after the first given
the last `guidance.overlap` frames made; a single-frame model (phase `single`) makes every
frame on its own (window 1, no overlap). A super-resolution model runs the same way, each
window also given its low-resolution frames.
"""

from __future__ import annotations

import torch

from vlogger.models.diffusion import standard_noise
from vlogger.models.sampling import outpaint, window_of


@torch.no_grad()
def generate_frames(
    module,
    reference: torch.Tensor,
    controls: torch.Tensor,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    lowres: torch.Tensor | None = None,
    desc: str = "stage 2",
) -> torch.Tensor:
    """(T, 3, S, S) frames in [-1, 1] for a reference (3, S, S) and controls (T, 14, S, S)
    (and, for super-resolution, the low-resolution frames (T, 3, s, s))."""
    clip = module.cfg["phase"] == "clip"
    window = module.cfg["data"]["frames"] if clip else 1
    overlap = module.cfg["guidance"]["overlap"] if clip else 0
    dev, size = module.device, controls.shape[-2:]
    controls = controls.to(dev)
    lowres = None if lowres is None else lowres.to(dev)
    ref = reference.to(dev)[None]
    common = None  # one shared part of the starting noise for the whole video: windows continue each other
    if module.noise_correlation > 0:
        common = standard_noise((1, 1, 3, *size), generator, dev)

    def sample_window(start: int, known: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        ctrl = window_of(controls, start, window)[None]
        low = None if lowres is None else module.upsample(window_of(lowres, start, window)[None])
        if known is not None:
            known, mask = known[None], mask.expand(-1, 1, *size)[None]
        return module.sample(ref, ctrl, known, mask, generator, steps, guidance, low, common)[0]

    return outpaint(sample_window, len(controls), window, overlap, (3, *size), dev, desc)
