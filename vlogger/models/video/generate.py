"""Stage-2 frames for controls of any length by temporal outpainting.

The first window of `frames` frames is sampled freely; every next window starts
`frames - overlap` later with the last `overlap` generated frames given through the
known-frame channels the clip phase trained with. A single-frame model (phase `single`)
makes every frame on its own (window 1, no overlap). A super-resolution model runs the same
way, each window also given its low-resolution frames.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from vlogger.models.diffusion import standard_noise
from vlogger.models.outpaint import window_starts


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
    n, dev = len(controls), module.device
    starts = window_starts(n, window, overlap) if clip else list(range(n))
    total = starts[-1] + window
    pad = controls[-1:].expand(total - n, -1, -1, -1)
    controls = torch.cat([controls, pad]).to(dev)
    if lowres is not None:
        lowres = torch.cat([lowres, lowres[-1:].expand(total - n, -1, -1, -1)]).to(dev)
    out = torch.zeros(total, 3, *controls.shape[-2:], device=dev)
    ref = reference.to(dev)[None]
    common = None  # one shared part of the starting noise for the whole video: windows continue each other
    if module.noise_correlation > 0:
        common = standard_noise((1, 1, 3, *controls.shape[-2:]), generator, dev)
    for i, s in enumerate(tqdm(starts, desc=desc, unit="window")):
        known = mask = None
        if i > 0 and overlap:
            known = out[s : s + window][None].clone()
            mask = torch.zeros(1, window, 1, *out.shape[-2:], device=dev)
            mask[:, :overlap] = 1.0
        ctrl = controls[s : s + window][None]
        low = module.upsample(lowres[s : s + window][None]) if lowres is not None else None
        out[s : s + window] = module.sample(ref, ctrl, known, mask, generator, steps, guidance, low, common)[0]
    return out[:n]
