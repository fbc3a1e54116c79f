"""End-to-end preprocessing throughput on the real clips, per stage, in frames/s per core.

Runs `vlogger preprocess` with ONE worker process over ../shared/data/clips (or --input) and
reads the CPU seconds each stage spent (worker: decode, audio, track, crop_encode; parent:
write). CPU time counts every thread of the worker, so frames / CPU-seconds is an honest
per-core figure even though mediapipe uses helper threads.

    python -m benchmarks.preprocess [--input DIR] [--workers 1] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, publish
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.preprocessing.run import preprocess

STAGES = ["decode", "track", "crop_encode", "audio", "fit", "write"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=str(REPO_ROOT.parent / "shared" / "data" / "clips"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--append", help="append the result table to this markdown file")
    args = ap.parse_args()
    cfg = load_config(None, "preprocess/default.yaml", args.set)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        stats = preprocess(Path(args.input), Path(out), cfg, workers=args.workers)
        wall = time.perf_counter() - t0
    frames, t = stats["frames"], stats["timings_cpu_s"]
    cpu = sum(t.get(s, 0.0) for s in STAGES)
    lines = [
        f"### Preprocess throughput, {datetime.date.today()} ({machine()})",
        "",
        f"Input `{args.input}`: {stats['inputs']} videos, {frames} frames at {cfg['ingest']['fps']} fps, "
        f"{stats['clips']} clips, {stats['rejected']} rejections; workers={args.workers}, "
        f"crop {cfg['crop']['size']} px, pose every {cfg['tracking']['pose_stride']} frames, "
        f"hands every {cfg['tracking']['hand_stride']} frames (0 = off).",
        "",
        "| stage | CPU s | ms/frame | share |",
        "|---|---|---|---|",
        *[f"| {s} | {t.get(s, 0):.1f} | {1000 * t.get(s, 0) / frames:.1f} | {t.get(s, 0) / cpu:.0%} |" for s in STAGES],
        f"| **total** | {cpu:.1f} | {1000 * cpu / frames:.1f} | |",
        "",
        f"**{frames / cpu:.1f} frames/s per core** (CPU time); wall {wall:.1f} s = {frames / wall:.1f} frames/s "
        f"with {args.workers} worker(s).",
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
