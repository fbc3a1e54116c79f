"""Noise schedules and samplers for both stages: a thin layer over diffusers' schedulers.

Both denoisers predict x0 (`prediction_type: sample`), as VLOGGER does. Training draws
timesteps and noises with the DDPM schedule; sampling runs DDPM, DDIM or DPM-Solver++ for a
configurable number of steps, deterministic for a given torch.Generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from vlogger.core.errors import UsageError

SAMPLERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}

# x_t, t (B,) -> predicted x0; the caller closes over conditioning and guidance
Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer diffusion steps (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


def correlated_noise(
    shape: tuple[int, ...],
    correlation: float,
    generator: torch.Generator | None,
    device: torch.device | str,
    common: torch.Tensor | None = None,
) -> torch.Tensor:
    """Unit-variance starting noise whose frames (dim 1) share `correlation` of their variance
    through `common` (B or 1, 1, ...; drawn here when None). With a deterministic sampler,
    frames that start alike come out alike: less flicker. Passing the same `common` to every
    outpainting window keeps the new frames alike to the ones they continue (no seam)."""
    noise = standard_noise(shape, generator, device)
    if correlation <= 0:
        return noise
    if common is None:
        common = standard_noise((shape[0], 1, *shape[2:]), generator, device)
    return correlation**0.5 * common.to(device) + (1 - correlation) ** 0.5 * noise


def standard_noise(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str
) -> torch.Tensor:
    """N(0, 1) drawn on the generator's device (a CPU generator seeds GPU sampling too), on `device`."""
    at = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=at).to(device)


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

    def ddim_grid(self, steps: int) -> torch.Tensor:
        """The timesteps `sample` visits with DDIM in `steps` steps, largest first (on the CPU);
        each step goes from t to t - train_steps // steps (below 0: the clean end)."""
        sched = DDIMScheduler.from_config(self.train_scheduler.config)
        sched.set_timesteps(steps, device="cpu")
        return sched.timesteps

    def _alpha(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Cumulative alpha at steps t (B,), 1 below step 0 (DDIM's clean end), shaped to broadcast over `like`."""
        cumprod = self.train_scheduler.alphas_cumprod.to(like.device)
        a = torch.where(t >= 0, cumprod[t.clamp_min(0)], torch.ones((), device=like.device))
        return a.view(-1, *[1] * (like.dim() - 1)).to(like.dtype)

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM (eta 0, as `sample` runs it) from x_t at steps t (B,) to t_prev (B,),
        given the predicted x0, with a step per sample."""
        a_t, a_prev = self._alpha(t, x_t), self._alpha(t_prev, x_t)
        eps = (x_t - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    def ddim_x0(self, x_t: torch.Tensor, x_prev: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        """The x0 whose DDIM step from x_t at t lands on x_prev at t_prev (`ddim_step` inverted in
        x0): what a distilled student taking one step must predict to land where its teacher's
        two steps did (progressive distillation, Salimans and Ho 2022)."""
        a_t, a_prev = self._alpha(t, x_t), self._alpha(t_prev, x_t)
        r = ((1 - a_prev) / (1 - a_t)).sqrt()
        return (x_prev - r * x_t) / (a_prev.sqrt() - r * a_t.sqrt())

    @torch.no_grad()
    def sample(
        self,
        denoise: Denoise,
        shape: tuple[int, ...],
        sampler: str = "ddim",
        steps: int = 50,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from `noise` (drawn here when None); `generator` makes it
        reproducible."""
        if sampler not in SAMPLERS:
            raise UsageError(f"sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
        sched = SAMPLERS[sampler].from_config(self.train_scheduler.config)
        # the schedule stays on the CPU: the scheduler's per-step arithmetic and branches on the
        # timestep are then host scalars, not reads of a GPU tensor (a host sync every step)
        sched.set_timesteps(steps if sampler != "ddpm" else min(steps, self.num_train_timesteps), device="cpu")
        if noise is None:
            noise = correlated_noise(shape, 0.0, generator, device)
        x = noise * sched.init_noise_sigma
        for t in sched.timesteps:
            tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
            x0 = denoise(x, tt)
            kwargs = {"generator": generator} if sampler != "dpm" else {}
            x = sched.step(x0, t, x, **kwargs).prev_sample
        return x
