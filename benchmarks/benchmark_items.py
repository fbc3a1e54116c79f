"""Time per benchmark item: a `vlogger benchmark run` folder's per-item generation times against
the items' lengths, with a least-squares line (seconds = fixed + per-second x length), so the
cost of a longer benchmark or a longer item can be read off.

    python -m benchmarks.benchmark_items RUN_DIR [RUN_DIR ...] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import machine, publish


def table(run: Path) -> list[str]:
    results = json.loads((run / "results.json").read_text())
    gen = results["benchmark"]["generation"]
    rows = sorted(
        (json.loads(p.read_text()) | {"id": p.stem} for p in (run / "timing").glob("*.json")),
        key=lambda t: t["video_seconds"],
    )
    length = np.array([t["video_seconds"] for t in rows])
    seconds = np.array([t["seconds"] for t in rows])
    slope, fixed = np.polyfit(length, seconds, 1)
    sampling = results["benchmark"]["sampling"]
    lines = [
        f"`{run}` ({len(rows)} items, stage-2 steps {sampling['steps']}, seed {sampling['seed']}; {machine()}):",
        "",
        "| item | video s | frames | generation s | s per video s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['id']} | {t['video_seconds']:.2f} | {t['frames']} | {t['seconds']:.1f} | "
        f"{t['seconds'] / t['video_seconds']:.1f} |"
        for t in rows
    ]
    lines += [
        "",
        f"All items: {gen['wall_seconds']:.0f} s for {gen['frames']} frames = {gen['frames_per_second']:.2f} "
        f"frames/s, {gen['seconds_per_item']:.1f} s per item; scoring {results['evaluation_seconds']:.0f} s. "
        f"Least-squares fit: {fixed:.1f} s + {slope:.2f} s per second of item.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--append")
    args = parser.parse_args()
    publish([line for run in args.runs for line in [*table(run), ""]], args.append)


if __name__ == "__main__":
    main()
