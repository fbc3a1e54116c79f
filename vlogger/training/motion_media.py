"""What stage 1 shows a person during training: predicted vs. ground-truth jaw opening and head
rotation over a validation window, and the two motions rendered side by side as a video."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch

from vlogger.body.facemesh import FaceBasis, facemesh_vertices
from vlogger.body.geometry import rot6d_to_matrix
from vlogger.body.motion import MotionLayout, from_motion
from vlogger.body.render import ControlRenderer, controls_to_rgb
from vlogger.core.video import encode_mp4
from vlogger.training.logging import ValidationMedia, log_image, log_video


def reference_from_vector(ref: torch.Tensor, layout: MotionLayout, size: int) -> dict:
    """A reference placed in the middle of a size-px frame (face height 40 %), from the
    reference vector stage 1 sees: enough to draw a motion when the real crop is not at hand."""
    parts = layout.split_reference(ref)
    scale = torch.tensor(0.4 * size)
    trans = torch.tensor([size / 2, 0.42 * size, 0.0])
    return {
        "expression": parts["expression"],
        "rotation": rot6d_to_matrix(parts["rotation"]),
        "scale": scale,
        "translation": trans,
        "body": trans + scale * parts["body"],
        "body_visible": parts["visible"],
    }


def head_angles(motion: torch.Tensor, layout: MotionLayout) -> tuple[np.ndarray, np.ndarray]:
    """Yaw and pitch (degrees) of the head rotation residual in each motion vector."""
    r = rot6d_to_matrix(motion[:, layout.rotation])
    yaw = torch.rad2deg(torch.atan2(r[:, 0, 2], r[:, 2, 2]))
    pitch = torch.rad2deg(torch.asin((-r[:, 1, 2]).clamp(-1, 1)))
    return yaw.numpy(), pitch.numpy()


def plot_motion(pred: torch.Tensor, truth: torch.Tensor, layout: MotionLayout, path: Path, title: str) -> Path:
    """Jaw coefficient, yaw and pitch over the window, prediction vs. ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
    series = [("jaw (expression 1, Δ to reference)", lambda m: m[:, 0].numpy())]
    series += [
        ("head yaw °", lambda m: head_angles(m, layout)[0]),
        ("head pitch °", lambda m: head_angles(m, layout)[1]),
    ]
    for ax, (name, get) in zip(axes, series, strict=True):
        ax.plot(get(truth), label="ground truth", color="k")
        ax.plot(get(pred), label="sampled", color="tab:red")
        ax.set_ylabel(name, fontsize=8)
    axes[0].legend(fontsize=8)
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("frame (25 fps)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def render_motion_pair(
    pred: torch.Tensor, truth: torch.Tensor, ref: torch.Tensor, basis: FaceBasis, layout: MotionLayout, size: int = 128
) -> np.ndarray:
    """(N, size, 2·size, 3) uint8: semantic maps of the sampled | ground-truth motion's face and
    body (of motion vectors of `layout`)."""
    reference = reference_from_vector(ref, layout, size)
    renderer = ControlRenderer(basis.faces, basis.labels, basis.mean, size)
    blank = renderer.reference(torch.zeros(1, 3, size, size), torch.zeros(1, basis.mean.shape[0], 3))
    panels = []
    for motion in (pred, truth):
        p = from_motion(motion[:, : layout.base_dim], reference)
        p["expression"] = torch.cat(
            [p["expression"], torch.zeros(len(motion), basis.n_components - layout.n_expression)], 1
        )
        verts = facemesh_vertices({**p, "identity": basis.mean}, basis)
        controls = renderer(verts, blank, p["body"], p["body_visible"])
        panels.append(controls_to_rgb(controls)[:, :, :size])
    return torch.cat(panels, 2).numpy()


class MotionMedia(ValidationMedia):
    """Sample the first validation window with the EMA weights; write the plot and (given the
    face-mesh basis to draw with) the side-by-side video under the run folder and log both."""

    def __init__(self, run_dir: Path, every: int, basis: FaceBasis | None, fps: int = 25):
        super().__init__(run_dir, every)
        self.basis, self.fps = basis, fps

    def draw(self, trainer: L.Trainer, module, batch: dict, step: int) -> None:
        gen = torch.Generator(device=module.device).manual_seed(0)
        pred = module.sample(batch["mel"][:1], batch["ref"][:1], generator=gen)[0].float().cpu()
        truth, ref = batch["motion"][0].float().cpu(), batch["ref"][0].float().cpu()
        media = self.run_dir / "media"
        title = f"step {step}: {batch['key'][0]} from frame {int(batch['start'][0])}"
        png = plot_motion(pred, truth, module.layout, media / f"motion-{step:07d}.png", title)
        log_image(trainer.logger, "val/motion_plot", png, step)
        if self.basis is None:
            return
        frames = render_motion_pair(pred, truth, ref, self.basis, module.layout)
        mp4 = media / f"motion-{step:07d}.mp4"
        mp4.write_bytes(encode_mp4(frames, self.fps, "libx264", 23, "veryfast"))
        log_video(trainer.logger, "val/motion_video", mp4, step)
