"""In-training evaluation: every `benchmark.every_steps`, the weights being trained go through a
small benchmark on rank 0 and its metrics and one video go to the run's logger, so the curves
show lip sync and identity over training, not only the loss. The training layer knows nothing
of it: the CLI hands this callback to the run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from vlogger.benchmark.manifest import load_manifest
from vlogger.benchmark.run import RunDir, merge, run_shard
from vlogger.core.config import load_config
from vlogger.core.errors import UsageError
from vlogger.generation.pipeline import Sampling
from vlogger.training.logging import log_video
from vlogger.zoo.models import ModelFiles


class BenchmarkDuringTraining(Callback):
    """Saves the current weights to `RUN/benchmark/stepN.ckpt` and benchmarks them with the other
    stage's checkpoint (`benchmark.video_checkpoint` while stage 1 trains, `benchmark.motion_checkpoint`
    while stage 2 does) on the manifest's first `benchmark.items` items."""

    def __init__(self, cfg: dict, stage: str, run_dir: Path) -> None:
        b = cfg["benchmark"]
        partner = "video_checkpoint" if stage == "motion" else "motion_checkpoint"
        if not b[partner]:
            raise UsageError(f"benchmark.manifest is set: give benchmark.{partner} (the other stage makes the videos)")
        manifest = load_manifest(b["manifest"])
        self.manifest = replace(manifest, items=manifest.items[: b["items"]])
        self.root = manifest.root(b["data_root"])
        self.stage, self.partner, self.every = stage, Path(b[partner]), b["every_steps"]
        self.sampling = Sampling(seed=0, steps=b["steps"])
        self.out = run_dir / "benchmark"
        self.protocol = load_config(None, "eval/protocol.yaml")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.every or step % self.every:
            return
        ckpt = self.out / f"step{step:07d}.ckpt"
        trainer.save_checkpoint(ckpt)  # every rank takes part; rank 0 writes
        if not trainer.is_global_zero:
            return
        mine = {self.stage: ckpt, "video" if self.stage == "motion" else "motion": self.partner}
        run = RunDir(self.out / f"step{step:07d}", self.out / "items")
        run_shard(
            self.manifest, self.root, run, ModelFiles(mine["motion"], mine["video"]), self.sampling, self.protocol
        )
        results = merge(self.manifest, run, self.protocol)
        metrics = {f"benchmark/{k}": v for k, v in results["aggregate"].items()}
        metrics["benchmark/scored_fraction"] = results["scored"] / len(self.manifest.items)  # faces found at all
        trainer.logger.log_metrics(metrics, step=step)
        video = next(iter(sorted((run.out / "videos").glob("*.mp4"))), None)
        if video is not None:
            log_video(trainer.logger, "benchmark/video", video, step)
