"""What stage 2 shows a person during training: sampled frames beside the ground truth and the
warped-reference control, for the first validation window."""

from __future__ import annotations

import cv2
import lightning as L
import numpy as np
import torch

from vlogger.body.render import Controls
from vlogger.training.logging import ValidationMedia, log_image


def frames_strip(*rows: torch.Tensor) -> np.ndarray:
    """Rows of (T, 3, H, W) images in [-1, 1] -> one uint8 grid, a row each."""
    out = [torch.cat(list(r.float().clamp(-1, 1).cpu()), dim=2) for r in rows]
    grid = ((torch.cat(out, dim=1) + 1) * 127.5).round().byte().permute(1, 2, 0)
    return grid.numpy()


class VideoMedia(ValidationMedia):
    """Ground truth | sampled | warped reference rows of the first validation window (and the
    low-resolution input of a super-resolution model)."""

    def draw(self, trainer: L.Trainer, module, batch: dict, step: int) -> None:
        ref, controls = batch["reference"][:1], batch["controls"][:1]
        gen = torch.Generator(device=module.device).manual_seed(0)
        lowres = module.degrade(batch["frames"][:1], gen) if module.superres else None
        sampled = module.sample(ref, controls, generator=gen, lowres=lowres)[0]
        warped = Controls(controls[0]).warped * 2 - 1  # the renderer's warped reference, [0, 1] -> [-1, 1]
        rows = [batch["frames"][0], sampled, warped] + ([lowres[0]] if lowres is not None else [])
        grid = frames_strip(*rows)
        path = self.run_dir / "media" / f"video-{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        log_image(trainer.logger, "val/video_frames", path, step)
