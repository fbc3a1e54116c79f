"""Stage 2 as a LightningModule: reference image + per-frame controls -> frames, by x0 diffusion.

Two phases, as the paper trains them: `single` (one frame per sample, temporal layers off,
large batches) and `clip` (windows of `data.frames` frames, temporal layers on, optionally
with the first `guidance.overlap` frames given: the outpainting condition). A clip run starts
from a single-frame run's weights (`model.init_from`). Reference and controls are dropped
with configured probabilities for classifier-free guidance.

The super-resolution model is the same module with a `superres` section: its frames are at
the high size and each is conditioned, besides reference and controls, on itself shrunk to
`superres.from_size` and upsampled back (plus a little noise, so stage 2's imperfect frames
at generation are not out of distribution).

Distillation (`distill: {teacher, steps}`): progressive distillation (Salimans and Ho 2022) of a
trained stage-2 or super-resolution checkpoint into a student of the same network that samples
with DDIM in `steps` steps where the teacher took 2 * steps: the student starts from the
teacher's EMA weights and learns, at each of its own steps, the x0 that makes one DDIM step land
where two of the teacher's land. Rounds halve the steps (teacher = the last student). The
teacher is distilled without guidance (scale 1; both see the same dropped conditions).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vlogger.body.render import Controls, control_channels
from vlogger.core.config import ConfigError
from vlogger.core.errors import ContractError
from vlogger.core.spec import DataSpec
from vlogger.models.diffusion import Diffusion, correlated_noise
from vlogger.models.sampling import classifier_free, rows_like
from vlogger.models.video.unet import VideoUNet
from vlogger.training.base import DiffusionModule
from vlogger.training.checkpoints import CONFIG_VERSION, ema_weights, read_checkpoint

UNET_KEYS = (
    "channels",
    "blocks_per_level",
    "attention_levels",
    "temporal_attention_levels",
    "head_dim",
    "dropout",
    "gradient_checkpointing",
    "control_level",
)


class VideoDiffusion(DiffusionModule):
    def __init__(self, cfg: dict, spec: DataSpec):
        super().__init__()
        if cfg["distill"]:  # the student samples in its own steps
            steps = cfg["distill"]["steps"]
            if steps < 1 or cfg["diffusion"]["train_steps"] % (2 * steps):
                raise ConfigError(f"distill.steps {steps}: 2 x steps must divide diffusion.train_steps")
            cfg = {**cfg, "sampling": {**cfg["sampling"], "steps": steps, "sampler": "ddim"}}
        parts = spec.model_parts(cfg["model"]["parts"], "model.parts")
        cfg = {**cfg, "model": {**cfg["model"], "parts": list(parts)}}
        self.save_hyperparameters({"cfg": cfg, "spec": spec.to_dict(), "config_version": CONFIG_VERSION})
        unet = {k: cfg["model"][k] for k in UNET_KEYS}
        self.model = VideoUNet(**unet, lowres_input=self.superres is not None, control_channels=control_channels(parts))
        if cfg["model"].get("init_from"):
            self._init_from(Path(cfg["model"]["init_from"]), spec)
        if cfg["distill"]:
            self._load_teacher(Path(cfg["distill"]["teacher"]), spec)
        self.diffusion = Diffusion(cfg["diffusion"])
        self.finish_init()

    def _init_from(self, path: Path, spec: DataSpec) -> None:
        """Weights (the EMA copy) of an earlier run on data of the same contract and parts, e.g.
        phase 1 before phase 2."""
        init_cfg, init_spec, state = read_checkpoint(path, "video")
        init_spec.require_same(spec, str(path), "this run's shards")
        if init_cfg["model"]["parts"] != self.cfg["model"]["parts"]:
            raise ContractError(
                f"model.parts: {init_cfg['model']['parts']} in {path}, {self.cfg['model']['parts']} in this run"
            )
        self.model.load_state_dict(ema_weights(state))

    def _load_teacher(self, path: Path, spec: DataSpec) -> None:
        """The teacher's EMA network, frozen and kept outside the module tree (checkpoints hold
        the student only); the student starts from the same weights."""
        cfg, teacher_spec, state = read_checkpoint(path, "video")
        teacher_spec.require_same(spec, str(path), "this run's shards")
        keys = (*UNET_KEYS, "parts")
        for key in ("model", "superres"):
            mine = {k: self.cfg[key][k] for k in keys} if key == "model" else self.cfg[key]
            theirs = {k: cfg[key][k] for k in keys} if key == "model" else cfg[key]
            if mine != theirs:
                raise ContractError(f"{key}: {theirs} in the teacher {path}, {mine} in this run's config")
        teacher = VideoUNet(
            **{k: cfg["model"][k] for k in UNET_KEYS},
            lowres_input=self.superres is not None,
            control_channels=self.model.control_channels,
        )
        teacher.load_state_dict(ema_weights(state))
        object.__setattr__(self, "teacher", teacher.eval().requires_grad_(False))
        self.model.load_state_dict(ema_weights(state))

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts its controls draw (`model.parts`): what the motion driving it must carry."""
        return tuple(self.cfg["model"]["parts"])

    @property
    def temporal(self) -> bool:
        return self.cfg["phase"] == "clip"

    @property
    def superres(self) -> dict | None:
        """The super-resolution settings (from_size, noise_aug), or None for stage 2 proper."""
        return self.cfg.get("superres")

    @property
    def noise_correlation(self) -> float:
        """Share of the starting noise's variance common to all frames."""
        return self.cfg["sampling"]["noise_correlation"]

    @property
    def size(self) -> int:
        return self.cfg["data"]["size"]

    def upsample(self, low: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, h, w) low-resolution frames -> bilinear at the model's size."""
        b, n = low.shape[:2]
        up = F.interpolate(low.flatten(0, 1).float(), size=self.size, mode="bilinear", align_corners=False)
        return up.unflatten(0, (b, n))

    def degrade(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """High-resolution frames -> the super-resolution condition: area-shrunk to from_size,
        upsampled back, plus Gaussian noise of a random level up to `noise_aug` per sample."""
        b, n = frames.shape[:2]
        low = F.interpolate(frames.flatten(0, 1), size=self.superres["from_size"], mode="area")
        up = self.upsample(low.unflatten(0, (b, n)))
        sigma = torch.rand(b, 1, 1, 1, 1, device=frames.device, generator=generator) * self.superres["noise_aug"]
        return up + sigma * torch.randn(up.shape, device=frames.device, generator=generator)

    def x0_base(
        self, lowres: torch.Tensor | None, reference: torch.Tensor, controls: torch.Tensor
    ) -> torch.Tensor | None:
        """What the network's output is a residual over, or None for plain x0: the upsampled
        low-res frames (`superres.residual`), or the reference with the warped reference pasted
        in (`model.residual_over_warped`), so that a model starts from that picture, not from
        noise. Fixed for a sample, so computed once, not per step. (Checkpoints from before the
        option have no key: plain x0.)"""
        if lowres is not None:
            return lowres if self.superres["residual"] else None
        if not self.cfg["model"]["residual_over_warped"]:
            return None
        b, n = controls.shape[:2]
        ctrl = Controls(controls.flatten(0, 1))
        image = (reference[:, None].expand(b, n, -1, -1, -1).flatten(0, 1) + 1) / 2
        feather = self.cfg["model"]["paste_feather"] * controls.shape[-1]
        return (ctrl.paste(image, feather) * 2 - 1).unflatten(0, (b, n))

    def _sampling_network(self) -> torch.nn.Module:
        """The EMA network; with `sampling.compile` on a GPU, compiled once (mode
        reduce-overhead: CUDA graphs, since outpainting calls it with the same shapes every
        step of every window) and kept outside the module tree, so checkpoints never hold it."""
        model = self.ema.module.eval()
        if not (self.cfg["sampling"]["compile"] and self.device.type == "cuda"):
            return model
        if getattr(self, "_compiled", None) is None:
            object.__setattr__(self, "_compiled", torch.compile(model, mode="reduce-overhead", dynamic=False))
        return self._compiled

    def batch_size(self, batch: dict) -> int:
        return batch["frames"].shape[0]

    def losses(self, batch: dict, model: torch.nn.Module, generator: torch.Generator | None) -> dict:
        x0 = batch["frames"]
        b, n = x0.shape[:2]
        g = self.cfg["guidance"]
        if self.cfg["distill"]:  # the student's own steps
            grid = self.diffusion.ddim_grid(self.cfg["distill"]["steps"]).to(self.device)
            t = grid[torch.randint(0, len(grid), (b,), device=self.device, generator=generator)]
        else:
            t = self.diffusion.random_timesteps(b, self.device, generator)
        shared = self.cfg["diffusion"]["frame_noise_correlation"] if self.temporal else 0.0
        noise = correlated_noise(x0.shape, shared, generator, self.device)
        x_t = self.diffusion.add_noise(x0, noise, t)
        known_mask = torch.zeros(b, n, 1, *x0.shape[-2:], device=self.device)
        if self.temporal:
            use = torch.rand(b, device=self.device, generator=generator) < g["known_prefix_prob"]
            known_mask[use, : g["overlap"]] = 1.0
        drop_ref = torch.rand(b, device=self.device, generator=generator) < g["drop_reference"]
        drop_ctrl = torch.rand(b, device=self.device, generator=generator) < g["drop_controls"]
        lowres = self.degrade(x0, generator) if self.superres else None
        ref, ctrl = batch["reference"], batch["controls"]
        cond = {
            "reference": ref,
            "controls": ctrl,
            "known": x0,
            "known_mask": known_mask,
            "drop_reference": drop_ref,
            "drop_controls": drop_ctrl,
            "temporal": self.temporal,
            "lowres": lowres,
        }
        base = self.x0_base(lowres, ref, ctrl)
        pred = model(x_t, t, **cond)
        pred = pred if base is None else pred + base
        target = self._teacher_target(x_t, t, cond, base) if self.cfg["distill"] else x0
        free = 1.0 - known_mask
        loss = ((pred - target).pow(2) * free).sum() / (free.sum() * 3).clamp_min(1)
        return {"loss": loss}

    @torch.no_grad()
    def _teacher_target(self, x_t: torch.Tensor, t: torch.Tensor, cond: dict, base: torch.Tensor | None):
        """The x0 that takes a student's DDIM step from x_t at t to where two of the teacher's
        (t -> t - half -> t - 2 half) land."""
        teacher = self.teacher.to(self.device)
        half = self.diffusion.num_train_timesteps // (2 * self.cfg["distill"]["steps"])

        def x0_at(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            out = teacher(x, s, **cond)
            return out if base is None else out + base

        mid = self.diffusion.ddim_step(x_t, x0_at(x_t, t), t, t - half)
        end = self.diffusion.ddim_step(mid, x0_at(mid, t - half), t - half, t - 2 * half)
        return self.diffusion.ddim_x0(x_t, end, t, t - 2 * half)

    @torch.no_grad()
    def sample(
        self,
        reference: torch.Tensor,
        controls: torch.Tensor,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        lowres: torch.Tensor | None = None,
        common_noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frames (B, T, 3, H, W) in [-1, 1] from the EMA weights; guidance contrasts with no
        reference and no controls (a super-resolution model keeps its `lowres` frames, already
        upsampled, in both); frames under `known_mask` are kept. The starting noise shares
        `sampling.noise_correlation` of its variance across frames through `common_noise`."""
        s = self.cfg["sampling"]
        steps = steps or s["steps"]
        guidance = s["guidance"] if guidance is None else guidance
        model = self._sampling_network()
        b = reference.shape[0]
        fmt = torch.channels_last if s["channels_last"] else torch.contiguous_format
        base = self.x0_base(lowres, reference, controls)

        def conditional(x_t: torch.Tensor, t: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
            """Guidance drops reference and controls; a super-resolution model keeps `lowres`."""
            ref, ctrl, kn, mask, low = (rows_like(v, x_t) for v in (reference, controls, known, known_mask, lowres))
            return model(
                x_t,
                t,
                reference=ref,
                controls=ctrl,
                known=kn,
                known_mask=mask,
                drop_reference=drop,
                drop_controls=drop,
                temporal=self.temporal,
                lowres=low,
                memory_format=fmt,
            )

        guided = classifier_free(conditional, guidance)

        def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = guided(x_t, t)
            return out if base is None else out + base

        shape = (b, controls.shape[1], 3, *controls.shape[-2:])
        noise = correlated_noise(shape, self.noise_correlation, generator, reference.device, common_noise)
        x = self.diffusion.sample(denoise, shape, s["sampler"], steps, generator, reference.device, noise)
        if known is not None:
            x = torch.where(known_mask.bool(), known, x)
        return x.clamp(-1, 1)
