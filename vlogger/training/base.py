"""The LightningModule both diffusion stages extend.

Subclasses build `self.model` and implement `losses(batch, generator)`; this class owns the
optimiser (AdamW, warm-up + cosine), the EMA copy of the weights that sampling uses, the
`torch.compile` option, gradient-norm and throughput logging, and deterministic validation
(fixed noise per batch, so the validation loss is comparable across steps and runs).
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from lightning.pytorch.utilities import grad_norm
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vlogger.core.spec import DataSpec


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.05) -> float:
    """LR multiplier: linear warm-up to 1, then cosine down to `floor` at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class DiffusionModule(L.LightningModule):
    """Shared training loop; `self.model` is set by the subclass before `finish_init()`."""

    model: torch.nn.Module

    def finish_init(self) -> None:
        """EMA and compile: call at the end of the subclass __init__, once `self.model` exists."""
        optim = self.cfg["optim"]
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(optim["ema_decay"]))
        self.ema.requires_grad_(False)
        # compiled forward kept outside the module tree (object.__setattr__), so checkpoints hold
        # the plain model once, under its own key names, whether or not training compiled it
        compiled = torch.compile(self.model) if self.cfg["trainer"].get("compile") else self.model
        object.__setattr__(self, "forward_train", compiled)
        self._t_last: float | None = None

    @property
    def cfg(self) -> dict:
        return self.hparams["cfg"]

    @property
    def spec(self) -> DataSpec:
        """The data contract of the shards the model was trained on (stored in its checkpoints)."""
        return DataSpec.from_dict(self.hparams["spec"], f"{type(self).__name__} hyper-parameters")

    def losses(self, batch: dict, model: torch.nn.Module, generator: torch.Generator | None) -> dict:
        raise NotImplementedError

    def batch_size(self, batch: dict) -> int:
        raise NotImplementedError

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.losses(batch, self.forward_train, None)
        bs = self.batch_size(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=False, batch_size=bs)
        self.log("train/loss_total", out["loss"], prog_bar=True, batch_size=bs)
        return out["loss"]

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        self.ema.update_parameters(self.model)
        now = time.perf_counter()
        if self._t_last is not None:
            rate = self.batch_size(batch) * self.trainer.world_size / max(now - self._t_last, 1e-9)
            self.log("train/samples_per_s", rate, batch_size=self.batch_size(batch))
        self._t_last = now

    def on_before_optimizer_step(self, optimizer) -> None:
        norms = grad_norm(self.model, norm_type=2)
        if norms:
            self.log("train/grad_norm", norms["grad_2.0_norm_total"], batch_size=1)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        gen = torch.Generator(device=self.device).manual_seed(1000 + batch_idx)
        out = self.losses(batch, self.ema.module, gen)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, sync_dist=True, batch_size=self.batch_size(batch))

    def configure_optimizers(self):
        o = self.cfg["optim"]
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "pos" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o["lr"],
            betas=tuple(o["betas"]),
        )
        total = self.cfg["trainer"]["max_steps"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, o["warmup_steps"], total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
