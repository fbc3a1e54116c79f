"""`vlogger benchmark run`: generate every item with a checkpoint, score them under the protocol,
add a row to the leaderboard.

Resumable per item: a video is written under a temporary name and renamed when complete, and
a finished item is never generated again. Splittable: `--num-shards N --shard-index I` makes
every N-th item from I (a cluster array, all shards writing into one folder); `merge` scores
the folder once every item is there. One run is the same as its shards merged.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from vlogger.benchmark.items import AUDIO, TRUTH, ItemFiles, prepare
from vlogger.benchmark.manifest import Item, Manifest, check_protocol
from vlogger.benchmark.provenance import checkpoint_record, code_commit, machine
from vlogger.core.errors import ContractError, UsageError
from vlogger.core.files import write_json
from vlogger.core.paste_mask import mask_path
from vlogger.evaluation.report import write_report
from vlogger.evaluation.runner import evaluate
from vlogger.generation.pipeline import BodyFiles, Sampling, generate_motion, generate_video
from vlogger.training.checkpoints import read_checkpoint
from vlogger.zoo.models import ModelFiles

VIDEOS = "videos"


@dataclass
class RunDir:
    """A benchmark run's folder: videos/, timing/, run-I.json, results.json, report.html; and how
    many processes score its videos (scoring is CPU work: tracking both videos of every item)."""

    out: Path
    items_dir: Path | None = None  # prepared items (default out/items)
    workers: int = 1

    def __post_init__(self) -> None:
        self.items_dir = self.items_dir or self.out / "items"

    def video(self, item_id: str) -> Path:
        return self.out / VIDEOS / f"{item_id}.mp4"

    def timing(self, item_id: str) -> Path:
        return self.out / "timing" / f"{item_id}.json"


def shard_items(manifest: Manifest, num_shards: int, shard_index: int) -> list[Item]:
    if not 0 <= shard_index < num_shards:
        raise UsageError(f"--shard-index {shard_index} must be in [0, {num_shards})")
    return manifest.items[shard_index::num_shards]


def generate_item(item: Item, run: RunDir, models: ModelFiles, sampling: Sampling, size: int) -> dict:
    """One item's video (atomic), from its prepared reference and audio; returns its timing."""
    files = ItemFiles(run.items_dir, item.id)
    t0 = time.perf_counter()
    motion = generate_motion(
        files.reference, files.audio, models.motion, Sampling(seed=sampling.seed, device=sampling.device)
    )
    with tempfile.TemporaryDirectory(dir=run.out) as tmp:
        frames = generate_video(motion, models.video, Path(tmp), sampling, superres=models.superres, size=size)
        run.video(item.id).parent.mkdir(parents=True, exist_ok=True)
        os.replace(mask_path(Path(tmp) / "video.mp4"), mask_path(run.video(item.id)))  # before the video: it says done
        os.replace(Path(tmp) / "video.mp4", run.video(item.id))
    seconds = time.perf_counter() - t0
    timing = {"seconds": round(seconds, 3), "frames": len(frames), "video_seconds": len(frames) / motion.fps}
    write_json(run.timing(item.id), timing)
    return timing


def run_record(manifest: Manifest, models: ModelFiles, sampling: Sampling) -> dict:
    """What every shard of a run must agree on (checked by merge)."""
    return {
        "benchmark": {"name": manifest.name, "version": manifest.version, "items": len(manifest.items)},
        "checkpoints": {
            "motion": checkpoint_record(models.motion, "motion"),
            "video": checkpoint_record(models.video, "video"),
            "superres": [checkpoint_record(p, "video") for p in models.superres],
        },
        "sampling": {k: v for k, v in asdict(sampling).items() if k != "device"},
        "code_commit": code_commit(),
        "machine": machine(sampling.device),
    }


def run_shard(
    manifest: Manifest,
    root: Path,
    run: RunDir,
    models: ModelFiles,
    sampling: Sampling,
    protocol: dict,
    num_shards: int = 1,
    shard_index: int = 0,
) -> dict[str, str]:
    """Prepare and generate this shard's items (finished ones skipped); returns the failures."""
    check_protocol(manifest, protocol)
    for path in [models.motion, models.video, *models.superres]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
    record = run_record(manifest, models, sampling)
    write_json(run.out / f"run-{shard_index}.json", {**record, "shard": [shard_index, num_shards]})
    items = shard_items(manifest, num_shards, shard_index)
    cfg, spec, _ = read_checkpoint(models.video, "video")
    failed = prepare(manifest, root, items, spec, BodyFiles(cfg["model"]["basis"]), run.items_dir)
    todo = [i for i in items if i.id not in failed and not run.video(i.id).is_file()]
    print(f"{len(items) - len(todo) - len(failed)} of {len(items)} items already generated, {len(todo)} to go")
    for item in tqdm(todo, desc="generate", unit="item"):
        generate_item(item, run, models, sampling, manifest.size)
    return failed


def _same_record(records: dict[str, dict]) -> dict:
    """The shards' common record; a ContractError names two shards that ran differently."""
    common = {name: {k: v for k, v in r.items() if k not in ("shard", "machine")} for name, r in records.items()}
    first_name, first = next(iter(common.items()))
    for name, rec in common.items():
        if rec != first:
            keys = sorted(k for k in rec if rec[k] != first.get(k))
            raise ContractError(f"{Path(name).name} and {Path(first_name).name} ran with different {keys}")
    return first


def merge(manifest: Manifest, run: RunDir, protocol: dict) -> dict:
    """Score the run's videos once every item is generated; results.json + report.html."""
    check_protocol(manifest, protocol)
    records = {str(p): json.loads(p.read_text()) for p in sorted(run.out.glob("run-*.json"))}
    if not records:
        raise UsageError(f"{run.out}: no run-*.json: run `vlogger benchmark run` (each shard) into it first")
    record = _same_record(records)
    failed = (
        json.loads((run.items_dir / "failed.json").read_text()) if (run.items_dir / "failed.json").is_file() else {}
    )
    missing = [i.id for i in manifest.items if not run.video(i.id).is_file() and i.id not in failed]
    if missing:
        raise UsageError(
            f"{run.out}: {len(missing)} items not generated yet ({', '.join(missing[:5])}...): "
            "run the remaining shards (or the same command again to resume)"
        )
    timings = [json.loads(run.timing(i.id).read_text()) for i in manifest.items if run.timing(i.id).is_file()]
    seconds = sum(t["seconds"] for t in timings)
    frames = sum(t["frames"] for t in timings)
    generation = {
        "wall_seconds": round(seconds, 2),
        "frames": frames,
        "frames_per_second": round(frames / seconds, 3) if seconds else None,
        "seconds_per_item": round(seconds / len(timings), 2) if timings else None,
        "machines": sorted({json.dumps(r["machine"], sort_keys=True) for r in records.values()}),
    }
    return score_folder(run.out / VIDEOS, run, protocol, {**record, "generation": generation}, failed)


def score_folder(videos: Path, run: RunDir, protocol: dict, provenance: dict, not_scored: dict) -> dict:
    """Evaluate `videos` against the prepared truth and audio; writes results.json and report.html
    into run.out and returns the results (with `benchmark` provenance and the items not scored)."""
    t0 = time.perf_counter()
    results = evaluate(
        videos, run.items_dir / TRUTH, run.items_dir / AUDIO, protocol, run.out / "frames", workers=run.workers
    )
    results["evaluation_seconds"] = round(time.perf_counter() - t0, 1)
    results["benchmark"] = {**provenance, "not_scored": not_scored}
    write_json(run.out / "results.json", results)
    write_report(results, run.out / "report.html.tmp")
    os.replace(run.out / "report.html.tmp", run.out / "report.html")
    return results
