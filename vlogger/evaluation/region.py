"""PSNR and SSIM inside a region of each frame (e.g. the hands): a whole-frame score is ruled by
the background and the face, which a hand covering a few per cent of the frame hardly moves."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from vlogger.evaluation.motion import PSNR_CAP


def region_scores(gen: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame whose region is not empty: `frame` (its index), `psnr` (dB over the region's
    pixels and channels, capped at PSNR_CAP), `ssim` (the SSIM map of `vlogger.evaluation.motion.ssim`,
    Gaussian window 11, averaged over the region's pixels: a pixel's window reaches ~5 px past
    the region) and `pixels` (the region's size). gen, ref: (T, H, W, 3) uint8; mask: (T, H, W)
    bool. A full mask gives the whole-frame scores."""
    if gen.shape != ref.shape or mask.shape != gen.shape[:3]:
        raise ValueError(f"shapes differ: generated {gen.shape}, reference {ref.shape}, mask {mask.shape}")
    frames = np.flatnonzero(mask.reshape(len(mask), -1).any(1))
    g, r = (torch.from_numpy(v[frames]).permute(0, 3, 1, 2).double() / 255 for v in (gen, ref))
    m = torch.from_numpy(mask[frames])[:, None].double()
    pixels = m.sum(dim=(1, 2, 3))
    mse = (((g - r) ** 2) * m).sum(dim=(1, 2, 3)) / (3 * pixels)
    psnr = (10 * torch.log10(1 / mse)).clamp(max=PSNR_CAP)
    _, ssim_map = structural_similarity_index_measure(
        g.float(), r.float(), data_range=1.0, reduction="none", return_full_image=True
    )
    ssim = (ssim_map.double().mean(1, keepdim=True) * m).sum(dim=(1, 2, 3)) / pixels
    return {"frame": frames, "psnr": psnr.numpy(), "ssim": ssim.numpy(), "pixels": pixels.numpy().astype(int)}
