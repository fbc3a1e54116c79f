"""Experiment loggers (W&B offline by default, TensorBoard or CSV) and media logging for any of them."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from vlogger.core.errors import UsageError


def make_logger(cfg: dict, run_dir: Path, first_step: int = 0) -> Logger:
    """`logging.logger`: wandb (mode from `logging.wandb_mode`, offline unless the user sets up
    an account), tensorboard, or csv. A resumed run's CSV goes to `csv/from-stepN/`: Lightning's
    CSV writer deletes the metrics.csv it finds, and the earlier segments' metrics must stay."""
    lg = cfg["logging"]
    kind = lg["logger"]
    if kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError as e:
            raise UsageError("logging.logger=wandb needs `pip install wandb` (or set logging.logger=csv)") from e
        os.environ.setdefault("WANDB_MODE", lg["wandb_mode"])
        os.environ.setdefault("WANDB_SILENT", "true")
        return WandbLogger(project=lg["project"], name=run_dir.name, save_dir=str(run_dir), config=cfg)
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError as e:
            raise UsageError("logging.logger=tensorboard needs `pip install tensorboard`") from e
        return TensorBoardLogger(str(run_dir), name="tensorboard", version="")
    if kind == "csv":
        return CSVLogger(str(run_dir), name="csv", version=f"from-step{first_step:07d}" if first_step else "")
    raise UsageError(f"logging.logger={kind!r}: choose wandb, tensorboard or csv")


def finish(logger: Logger | None) -> None:
    """Close a W&B run when its training ends: left open, the next run in the same process (a
    resumed or second training, a leaderboard table) is logged into it."""
    if isinstance(logger, WandbLogger):
        import wandb

        wandb.finish()


def log_image(logger: Logger, key: str, path: Path, step: int) -> None:
    """A PNG already written under the run folder, also shown in the logger's UI."""
    if isinstance(logger, WandbLogger):
        logger.log_image(key, [str(path)], step=step)
    elif isinstance(logger, TensorBoardLogger):
        import numpy as np
        from PIL import Image

        logger.experiment.add_image(key, np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")


def log_video(logger: Logger, key: str, path: Path, step: int) -> None:
    """An mp4 already written under the run folder, also shown in W&B (others keep the file)."""
    if isinstance(logger, WandbLogger):
        import wandb

        logger.experiment.log({key: wandb.Video(str(path), format="mp4"), "trainer/global_step": step})


class ValidationMedia(Callback):
    """Base of the stages' media callbacks: runs `draw` on rank 0 after a validation, at most
    every `every` steps (and at step 0), with the first validation batch on the module's device."""

    def __init__(self, run_dir: Path, every: int):
        self.run_dir, self.every = run_dir, every
        self._last = -1

    def draw(self, trainer, module, batch: dict, step: int) -> None:
        raise NotImplementedError

    def on_validation_epoch_end(self, trainer, module) -> None:
        step = trainer.global_step
        if trainer.sanity_checking or not trainer.is_global_zero or (step - self._last < self.every and step > 0):
            return
        self._last = step
        batch = next(iter(trainer.val_dataloaders))
        batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        self.draw(trainer, module, batch, step)
