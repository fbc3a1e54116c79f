"""`vlogger train STAGE`: the Trainer, callbacks, run folder and resume, shared by both stages.

A run folder `logging.dir/logging.name` holds config.yaml, checkpoints/ (top-k by val/loss and
last.ckpt), media/ (plots, videos), the logger's files and summary.json (the validation losses
before and after training: the total and the parts a stage reports). `--resume auto` continues
from checkpoints/last.ckpt with the same step, optimiser, LR schedule and EMA; the training
stream is re-seeded with the step.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from vlogger.body.facemesh import FaceBasis
from vlogger.core.errors import ContractError, UsageError
from vlogger.datasets.motion import MotionDataModule
from vlogger.datasets.video import VideoDataModule
from vlogger.training.checkpoints import checkpoint_step, read_checkpoint
from vlogger.training.logging import finish, make_logger
from vlogger.training.motion import MotionDiffusion
from vlogger.training.motion_media import MotionMedia
from vlogger.training.video import VideoDiffusion
from vlogger.training.video_media import VideoMedia


class RecordBatches(Callback):
    """Debug aid (and the DDP test's witness): which windows each rank trained on."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_train_batch_start(self, trainer: L.Trainer, module, batch: dict, batch_idx: int) -> None:
        path = self.run_dir / f"seen-rank{trainer.global_rank}.jsonl"
        row = {"step": trainer.global_step, "keys": list(batch["key"]), "start": batch["start"].tolist()}
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def run_dir_of(cfg: dict) -> Path:
    return Path(cfg["logging"]["dir"]) / cfg["logging"]["name"]


def resume_path(run_dir: Path, resume: str | None) -> Path | None:
    """`auto` = the run's last.ckpt when there is one (else a fresh start); a path must exist."""
    if resume is None:
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if resume == "auto" else Path(resume)
    if resume != "auto" and not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    return path if path.is_file() else None


def start_step(path: Path | None, stage: str) -> int:
    """The step a run resumes from (0 for a fresh start)."""
    return checkpoint_step(path, stage) if path else 0


class LastStep(Callback):
    """`last.ckpt`, which `--resume auto` reads: the state at every validation and at the end of
    training, each step written once. Lightning's own `save_last` refreshes it only when a best-k
    file is written, so a run whose monitor stopped improving resumed from its last improvement
    (a 1500-step stage-1 run: 375)."""

    def __init__(self, path: Path):
        self.path, self.saved_step = path, -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self.saved_step:
            trainer.save_checkpoint(self.path)
            self.saved_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)  # steps after the last validation too


def build_trainer(cfg: dict, run_dir: Path, extra: list[Callback], first_step: int = 0) -> L.Trainer:

    t = cfg["trainer"]
    best = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="step{step:07d}-val{val/loss:.4f}",
        auto_insert_metric_name=False,
        monitor=cfg["checkpoint"]["monitor"],
        mode=cfg["checkpoint"]["mode"],
        save_top_k=cfg["checkpoint"]["save_top_k"],
    )
    last = LastStep(run_dir / "checkpoints" / "last.ckpt")
    callbacks = [best, last, LearningRateMonitor(logging_interval="step"), *extra]
    if cfg["debug"]["record_batches"]:
        callbacks.append(RecordBatches(run_dir))
    return L.Trainer(
        default_root_dir=run_dir,
        max_steps=t["max_steps"],
        max_time=t.get("max_time"),
        accelerator=t["accelerator"],
        devices=t["devices"],
        num_nodes=t["num_nodes"],
        strategy=t["strategy"],
        precision=t["precision"],
        gradient_clip_val=t["gradient_clip_val"],
        val_check_interval=t["val_every_steps"],
        check_val_every_n_epoch=None,
        limit_val_batches=t["limit_val_batches"],
        log_every_n_steps=t["log_every_steps"],
        logger=make_logger(cfg, run_dir, first_step),
        callbacks=callbacks,
        num_sanity_val_steps=0,
    )


def _prepare(cfg: dict, resume: str | None) -> tuple[Path, Path | None]:
    L.seed_everything(cfg["seed"], workers=True)
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run_dir, resume_path(run_dir, resume)


def check_resume(module: L.LightningModule, ckpt: Path, stage: str) -> None:
    """A resumed run continues the network its checkpoint holds, on data of the same contract: a
    changed setting is named here with both values, not left to torch's size mismatch."""
    cfg, spec, state = read_checkpoint(ckpt, stage)
    spec.require_same(module.spec, str(ckpt), "this run's shards")
    mine = module.state_dict()
    differ = sorted(set(mine) ^ set(state)) or [k for k in mine if mine[k].shape != state[k].shape]
    if not differ:
        return
    was, now = cfg["model"], module.cfg["model"]
    changed = [k for k in now if k != "init_from" and was.get(k) != now[k]]  # init_from: weights came from ckpt
    named = [f"model.{k}: {was.get(k)!r} in {ckpt}, {now[k]!r} in this run" for k in changed]
    raise ContractError(f"--resume {ckpt}: this config builds another network ({'; '.join(named) or differ[0]})")


def _val_metrics(metrics: dict) -> dict[str, float]:
    """The `val/...` entries of logged metrics, without the prefix."""
    return {k.removeprefix("val/"): float(v) for k, v in metrics.items() if k.startswith("val/")}


def hardware(trainer: L.Trainer) -> str:
    """What a run trained on, in words: the GPUs, or the CPU model and its threads."""
    n = trainer.num_devices * trainer.num_nodes
    if isinstance(trainer.accelerator, CUDAAccelerator):
        return f"{n} x {torch.cuda.get_device_name(trainer.strategy.root_device)}"
    cpuinfo = Path("/proc/cpuinfo")  # Linux; elsewhere the platform's own words
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads"


def _earlier_segments(run_dir: Path, ckpt: Path | None) -> list[dict]:
    """The starts before this one of a resumed run, from its summary.json (a summary written before
    `segments` existed gives its last start only, without hardware)."""
    path = run_dir / "summary.json"
    if ckpt is None or not path.is_file():
        return []
    before = json.loads(path.read_text())
    if "segments" in before:
        return before["segments"]
    step = before.get("global_step")
    return [{"steps": [None, step], "seconds": before["fit_seconds"], "hardware": "not recorded"}] if step else []


def _fit(
    cfg: dict,
    run_dir: Path,
    ckpt: Path | None,
    first_step: int,
    module,
    dm,
    media: list[Callback],
    extra: Sequence[Callback],
) -> dict:
    """Validate once (a fresh run), fit, and write summary.json: the part both stages share."""
    if ckpt is not None:
        check_resume(module, ckpt, cfg["stage"])
    trainer = build_trainer(cfg, run_dir, [*(media if cfg["logging"]["media_every_steps"] else []), *extra], first_step)
    summary: dict = {"run_dir": str(run_dir), "resumed_from": str(ckpt) if ckpt else None}
    if ckpt is None:
        # every validation loss (per part of the motion vector, for stage 1), not just the total
        summary["val_start"] = _val_metrics(trainer.validate(module, dm, verbose=False)[0])
        summary["val_loss_start"] = summary["val_start"]["loss"]
    t0 = time.perf_counter()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, dm, ckpt_path=ckpt)
    seconds = time.perf_counter() - t0
    summary["val_end"] = _val_metrics(trainer.callback_metrics)
    summary["val_loss_end"] = summary["val_end"].get("loss", float("nan"))
    summary["global_step"] = trainer.global_step
    steps = trainer.global_step - first_step
    summary["fit_seconds"] = round(seconds, 1)  # validation and checkpointing included
    summary["steps_per_s"] = round(steps / seconds, 3)
    summary["samples_per_s"] = round(steps * cfg["data"]["batch_size"] * trainer.world_size / seconds, 1)
    if torch.cuda.is_available():
        summary["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    segment = {"steps": [first_step, trainer.global_step], "seconds": round(seconds, 1), "hardware": hardware(trainer)}
    summary["segments"] = [*_earlier_segments(run_dir, ckpt), segment]  # the model card's wall time and hardware
    summary["best_checkpoint"] = trainer.checkpoint_callback.best_model_path
    summary["last_checkpoint"] = str(run_dir / "checkpoints" / "last.ckpt")
    if trainer.is_global_zero:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    finish(trainer.logger)
    return summary


def train_motion(cfg: dict, resume: str | None = None, callbacks: Sequence[Callback] = ()) -> dict:
    """Train stage 1; returns the summary written to summary.json. `callbacks` join the Trainer's
    (the CLI's in-training benchmark, which this layer cannot import)."""

    run_dir, ckpt = _prepare(cfg, resume)
    first_step = start_step(ckpt, cfg["stage"])
    dm = MotionDataModule(cfg, seed_offset=first_step)
    basis = None  # the face-mesh basis draws the validation videos; SMPL-X runs plot the motion only
    if dm.spec.body_model == "facemesh":
        basis = FaceBasis.load(cfg["model"]["basis"])
        if basis.basis_id != dm.spec.basis_id:
            shards = cfg["data"]["shards"]
            raise ContractError(f"basis: {basis.basis_id} in model.basis, {dm.spec.basis_id} in {shards}")
    stats = dm.stats()
    strength = cfg["model"]["jaw_prior"]
    prior = dm.jaw_prior(strength) if strength > 0 and ckpt is None else None  # a resume loads the fitted one
    module = MotionDiffusion(cfg, stats.mean, stats.std, dm.spec, dm.hand_basis, prior)
    media = [MotionMedia(run_dir, cfg["logging"]["media_every_steps"], basis)]
    return _fit(cfg, run_dir, ckpt, first_step, module, dm, media, callbacks)


def train_video(cfg: dict, resume: str | None = None, callbacks: Sequence[Callback] = ()) -> dict:
    """Train stage 2 (phase `single` or `clip`); returns the summary written to summary.json."""

    if cfg["phase"] not in ("single", "clip"):
        raise UsageError(f"phase={cfg['phase']!r}: single (frames, temporal layers off) or clip")
    run_dir, ckpt = _prepare(cfg, resume)
    first_step = start_step(ckpt, cfg["stage"])
    dm = VideoDataModule(cfg, seed_offset=first_step)
    dm.check_val_identities()
    module = VideoDiffusion(cfg, dm.spec)
    media = [VideoMedia(run_dir, cfg["logging"]["media_every_steps"])]
    return _fit(cfg, run_dir, ckpt, first_step, module, dm, media, callbacks)


TRAINERS = {"motion": train_motion, "video": train_video}
