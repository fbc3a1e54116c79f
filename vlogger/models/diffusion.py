"""Noise schedules and samplers for both stages: a thin layer over diffusers' schedulers.

Both denoisers predict x0 (`prediction_type: sample`), as VLOGGER does. Training draws
timesteps and noises with the DDPM schedule; sampling runs DDPM, DDIM or DPM-Solver++ for a
configurable number of steps, deterministic for a given torch.Generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

SAMPLERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}

# x_t, t (B,) -> predicted x0; the caller closes over conditioning and guidance
Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Diffusion:
    """The training schedule and a sampler factory, from a `diffusion` config section."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.train_scheduler = DDPMScheduler(
            num_train_timesteps=cfg["train_steps"],
            beta_schedule=cfg["beta_schedule"],
            prediction_type="sample",
            clip_sample=False,
            timestep_spacing="trailing",
        )
        self.num_train_timesteps = cfg["train_steps"]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.train_scheduler.add_noise(x0, noise, t)

    def random_timesteps(self, n: int, device: torch.device, generator: torch.Generator | None = None):
        return torch.randint(0, self.num_train_timesteps, (n,), device=device, generator=generator)

    @torch.no_grad()
    def sample(
        self,
        denoise: Denoise,
        shape: tuple[int, ...],
        sampler: str = "ddim",
        steps: int = 50,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Run the reverse process from pure noise; `generator` makes it reproducible."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        sched = SAMPLERS[sampler].from_config(self.train_scheduler.config)
        sched.set_timesteps(steps if sampler != "ddpm" else min(steps, self.num_train_timesteps), device=device)
        x = torch.randn(shape, generator=generator, device=generator.device if generator else device).to(device)
        x = x * sched.init_noise_sigma
        for t in sched.timesteps:
            tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
            x0 = denoise(x, tt)
            kwargs = {"generator": generator} if sampler != "dpm" else {}
            x = sched.step(x0, t, x, **kwargs).prev_sample
        return x
