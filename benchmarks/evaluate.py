"""Evaluation throughput on the real clips (the sync tables: `benchmarks.sync_calibration`).

`evaluate()` over all clips as generated AND reference (so every paired metric runs and each
video is tracked twice), in CPU seconds per second of video.

    python -m benchmarks.evaluate [--clips DIR] [--append benchmarks/RESULTS.md]

With `--videos 5 20 80`, instead: `vlogger evaluate` in a child process over that many videos
(the clips repeated under new names, each its own reference), with the child's peak resident
memory and CPU seconds (`wait4`: the largest single process, and the CPU of all of them).

    python -m benchmarks.evaluate --videos 5 20 80 [--workers 2] [--clips DIR] [--append ...]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, publish
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation.runner import evaluate
from vlogger.evaluation.tracks import open_video


def scaling(clips: Path, counts: list[int], workers: int) -> list[str]:
    """Peak RSS and CPU of `vlogger evaluate` as the number of videos grows."""
    sources = sorted(clips.glob("*.mp4"))
    protocol = load_config(None, "eval/protocol.yaml")
    fps, lengths = protocol["video"]["fps"], [open_video(p, protocol).n_frames for p in sources]
    lines = [
        f"`vlogger evaluate --workers {workers}` over N videos (the {len(sources)} clips of {clips.name}/ in turn, "
        "each scored against itself), one child process each:",
        "",
        "| videos | seconds of video | peak RSS (MB) | CPU s | CPU s per s of video | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "videos"
            folder.mkdir()
            for i, src in zip(range(n), itertools.cycle(sources), strict=False):
                (folder / f"{i:03d}_{src.name}").symlink_to(src.resolve())
            cmd = [sys.executable, "-m", "vlogger.cli", "evaluate", "--generated", str(folder)]
            cmd += ["--reference", str(folder), "--out", str(Path(tmp) / "out")]
            cmd += ["--workers", str(workers)] if workers > 1 else []
            wall = time.perf_counter()
            child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - wall
            if status != 0:
                raise RuntimeError(f"{' '.join(cmd)} exited with {status}")
            scored = json.loads((Path(tmp) / "out" / "results.json").read_text())["scored"]
        if scored != n:
            raise RuntimeError(f"{n - scored} of {n} videos unscorable")
        seconds = sum(n_frames for _, n_frames in zip(range(n), itertools.cycle(lengths), strict=False)) / fps
        cpu = usage.ru_utime + usage.ru_stime
        lines.append(
            f"| {n} | {seconds:.0f} | {usage.ru_maxrss / 1024:.0f} | {cpu:.0f} | {cpu / seconds:.2f} | {wall:.0f} |"
        )
        print(lines[-1], flush=True)
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(REPO_ROOT.parent / "shared" / "data" / "clips"))
    ap.add_argument("--append")
    ap.add_argument("--videos", type=int, nargs="+", help="memory and CPU for these numbers of videos instead")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.videos:
        head = f"### `vlogger evaluate` memory, {datetime.date.today()} ({machine()})"
        publish([head, "", *scaling(Path(args.clips), args.videos, args.workers)], args.append)
        return
    protocol = load_config(None, "eval/protocol.yaml")
    filter_native_logs()
    lines = [f"### Evaluation throughput, {datetime.date.today()} ({machine()}), protocol {protocol['version']}", ""]
    t0, w0 = time.process_time(), time.perf_counter()
    res = evaluate(Path(args.clips), Path(args.clips), None, protocol)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    seconds = res["video_seconds"]
    lines += [
        f"Offline metric set (`evaluate()` with the clips as generated and reference, each tracked): "
        f"{', '.join(sorted(k for k in res['aggregate'] if not k.endswith('_n_reference')))}: "
        f"{seconds:.0f} s of video in {cpu:.1f} CPU s (wall {wall:.1f} s) = "
        f"**{cpu / seconds:.2f} CPU s per second of video**. "
        f"Skipped here: {', '.join(res['skipped_metrics']) or 'none'}.",
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
