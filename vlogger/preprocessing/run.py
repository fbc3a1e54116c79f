"""`vlogger preprocess`: a folder of raw videos -> WebDataset shards, in parallel, resumable.

Files are processed by a pool of worker processes (one tracker each); the parent alone
writes shards. `num_shards`/`shard_index` take every n-th input so a SLURM array (or any
set of machines) splits the work; `merge_index` then joins their manifests.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm import tqdm

from vlogger.body.fitting import basis_id, make_fitter
from vlogger.core.config import load_config
from vlogger.core.errors import BadInput, UsageError
from vlogger.core.spec import DataSpec
from vlogger.core.tracking import check_backend, filter_native_logs, make_tracker, tracker_class
from vlogger.preprocessing.shards import Manifest, ShardSink, manifest_entry, merge_index, record_spec
from vlogger.preprocessing.splits import read_identities
from vlogger.preprocessing.video_to_clips import VideoResult, process_video

_tracker = None  # one per worker process, built by _init_worker


def list_inputs(root: Path, extensions: list[str]) -> list[Path]:
    """Every entry under root whose suffix is a video extension (broken links included, so
    they are reported rather than silently skipped)."""
    exts = {"." + e.lower().lstrip(".") for e in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts)


def _init_worker(cfg: dict) -> None:
    import cv2
    import torch

    filter_native_logs()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    global _tracker
    _tracker = make_tracker(cfg["tracking"])


def _work(path: Path, rel: str, cfg: dict) -> VideoResult:
    """Process one file; every failure becomes a rejection naming the file and the reason."""
    try:
        return process_video(path, rel, cfg, _tracker)
    except BadInput as e:
        return VideoResult(input=rel, rejected=[{"file": rel, "reason": e.reason}])
    except Exception as e:  # a batch job records the unexpected too, and carries on
        return VideoResult(input=rel, rejected=[{"file": rel, "reason": f"unexpected error: {type(e).__name__}: {e}"}])


def _pool(workers: int, cfg: dict) -> ProcessPoolExecutor:
    """Spawned (not forked) workers: mediapipe's graphs abort in a child forked from a
    process that already ran one, which a notebook or test session easily has."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(cfg,)
    )


def _pool_results(jobs: list[tuple[Path, str]], cfg: dict, workers: int) -> Iterator[VideoResult]:
    """Results as they finish. If a worker dies (a decoder crash), the unfinished files are
    retried one by one in fresh single-worker pools, so only the culprit is rejected."""
    finished: set[str] = set()
    try:
        with _pool(workers, cfg) as pool:
            futures = [pool.submit(_work, p, rel, cfg) for p, rel in jobs]
            for fut in as_completed(futures):
                res = fut.result()
                finished.add(res.input)
                yield res
    except BrokenProcessPool:
        for path, rel in jobs:
            if rel in finished:
                continue
            try:
                with _pool(1, cfg) as pool:
                    yield pool.submit(_work, path, rel, cfg).result()
            except BrokenProcessPool:
                yield VideoResult(
                    input=rel, rejected=[{"file": rel, "reason": "worker crashed while decoding or tracking"}]
                )


def data_spec(cfg: dict) -> DataSpec:
    """The data contract a run with `cfg` writes: settings, landmark format and body-model basis."""
    fmt = tracker_class(cfg["tracking"]["backend"]).landmark_format
    return DataSpec.from_preprocess_config(cfg, fmt, basis_id(cfg["fit"]))


def default_spec() -> DataSpec:
    """The spec of today's default preprocessing settings: for models built without shards
    (benchmarks of speed, tests of the networks)."""
    return data_spec(load_config(None, "preprocess/default.yaml"))


def preprocess(
    input_dir: Path, out_dir: Path, cfg: dict, workers: int = 1, num_shards: int = 1, shard_index: int = 0
) -> dict:
    """Process this job's share of input_dir into out_dir; returns a summary with timings."""
    if not input_dir.is_dir():
        raise BadInput(input_dir, "input is not a folder")
    if not 0 <= shard_index < num_shards:
        raise UsageError(f"shard_index {shard_index} must be in [0, {num_shards})")
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = list_inputs(input_dir, cfg["ingest"]["extensions"])[shard_index::num_shards]
    manifest = Manifest(out_dir, shard_index)
    jobs = [(p, p.relative_to(input_dir).as_posix()) for p in inputs]
    todo = [(p, rel) for p, rel in jobs if rel not in manifest.done]
    if todo:  # one clear error up front rather than every worker dying at start-up
        check_backend(cfg["tracking"])
        if cfg["shards"]["identities"]:
            read_identities(cfg["shards"]["identities"])
        try:
            make_fitter(cfg["fit"])
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(f"fit.body_model={cfg['fit']['body_model']}: {e}") from e
    record_spec(out_dir, shard_index, data_spec(cfg))
    sc = cfg["shards"]
    sinks = {
        split: ShardSink(
            out_dir, f"{split}-{shard_index:03d}", int(sc["max_size_mb"] * 2**20), sc["max_clips"], manifest
        )
        for split in ("train", "val", "test")
    }
    timings: dict[str, float] = defaultdict(float)
    stats = {"inputs": len(jobs), "skipped_done": len(jobs) - len(todo), "clips": 0, "rejected": 0, "frames": 0}
    bar = tqdm(total=len(todo), desc="preprocess", unit="video", disable=not todo)
    for res in _pool_results(todo, cfg, workers):
        t0 = time.process_time()
        entry = manifest_entry(res.input, res.samples, res.rejected)
        if res.samples:
            sinks[res.samples[0]["json"]["split"]].add(entry, res.samples)
        else:
            manifest.record([entry])
        timings["write"] += time.process_time() - t0
        for k, v in res.timings.items():
            timings[k] += v
        stats["clips"] += len(res.samples)
        stats["rejected"] += len(res.rejected)
        stats["frames"] += res.frames
        bar.update()
        bar.set_postfix(clips=stats["clips"], rejected=stats["rejected"])
    bar.close()
    t0 = time.process_time()
    for sink in sinks.values():
        sink.commit()
    timings["write"] += time.process_time() - t0
    stats["timings_cpu_s"] = dict(timings)
    if num_shards == 1:
        stats["index"] = merge_index(out_dir)
    return stats
