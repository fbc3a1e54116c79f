"""Stage-1 motion for audio of any length (`vlogger.models.sampling.outpaint_windows`), and the seam
measurement."""

from __future__ import annotations

import numpy as np
import torch

from vlogger.core.mel import centre_on_clip, mel_window
from vlogger.models.sampling import outpaint_windows


@torch.no_grad()
def generate_long(
    module,
    mel: np.ndarray,
    ref: torch.Tensor,
    n_frames: int,
    generator: torch.Generator | None = None,
    overlap: int | None = None,
    **sample_kw,
) -> torch.Tensor:
    """(n_frames, D) de-normalised motion for a clip's mel rows (n_frames · r, n_mels), by
    outpainting windows of the model's length."""
    d = module.cfg["data"]
    n, r, c = d["window"], d["rows_per_frame"], d["mel_context"]
    overlap = module.cfg["guidance"]["overlap"] if overlap is None else overlap
    dev = module.device
    if d["centre_audio"] == "clip":  # as training centred each clip's rows (the denoiser then does not)
        mel = centre_on_clip(mel[: n_frames * r])
    ref = ref.to(dev, torch.float32)[None]

    def sample_window(start: int, known: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        m = torch.as_tensor(mel_window(mel, start, n, r, c), dtype=torch.float32, device=dev)[None]
        known, mask = (None, None) if known is None else (known[None], mask[None])
        return module.sample(m, ref, known, mask, generator=generator, **sample_kw)[0]

    return torch.cat(list(outpaint_windows(sample_window, n_frames, n, overlap, (module.layout.dim,), dev)))


def seam_jumps(motion: torch.Tensor, starts: list[int], overlap: int, dims: slice) -> dict:
    """Frame-to-frame change (L2 over `dims`) at the first new frame of every outpainted window
    vs. at every other frame: a visible seam makes the first clearly larger."""
    step = (motion[1:, dims] - motion[:-1, dims]).norm(dim=-1)  # step[t-1] = |x_t - x_{t-1}|
    border = [s + overlap for s in starts[1:] if s + overlap < len(motion)]
    is_border = torch.zeros(len(step), dtype=torch.bool)
    is_border[[b - 1 for b in border]] = True
    at, inside = step[is_border], step[~is_border]
    return {
        "border_mean": float(at.mean()) if len(at) else float("nan"),
        "inside_mean": float(inside.mean()),
        "ratio": float(at.mean() / inside.mean()) if len(at) else float("nan"),
        "borders": len(at),
    }
