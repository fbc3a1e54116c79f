"""Evaluation suite on the real clips: the weight-free sync table and the metric throughput.

1. Per clip: the detected AV offset on the ground truth, with the audio delayed by 3 and 7
   frames, and the sync confidence (issue 6's "relative shift" and "ground truth" checks).
2. Throughput: `evaluate()` over all clips as generated AND reference (so every paired
   metric runs and each video is tracked twice), in CPU seconds per second of video.

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

import numpy as np

from benchmarks.common import machine, publish
from vlogger.core import landmarks
from vlogger.core.avsync import av_sync
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation.runner import evaluate
from vlogger.evaluation.tracks import eval_tracker, open_video, track_video


def delayed(audio: np.ndarray, frames: int, hop: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames * hop, np.float32), audio])[: len(audio)]


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
    fps, hop = protocol["video"]["fps"], protocol["audio"]["sample_rate"] // protocol["video"]["fps"]
    filter_native_logs()
    tracker = eval_tracker()
    lines = [
        f"### Evaluation suite, {datetime.date.today()} ({machine()}), protocol {protocol['version']}",
        "",
        "Weight-free sync on the real clips (offset > 0: mouth after sound; delaying the audio by k",
        "should move the offset by -k):",
        "",
        "| clip | offset (GT) | confidence | offset, audio +3 | offset, audio +7 |",
        "|---|---|---|---|---|",
    ]
    hits, offsets, signals = {3: 0, 7: 0}, [], {}
    clips = sorted(Path(args.clips).glob("*.mp4"))
    for path in clips:
        v = track_video(path, protocol, tracker)
        mouth = landmarks.mouth_opening(v.lmk, v.landmark_format)
        signals[path.stem] = (mouth, v.audio)
        gt = av_sync(mouth, v.audio, fps, protocol["avsync"])
        moved = {k: av_sync(mouth, delayed(v.audio, k, hop), fps, protocol["avsync"])["av_offset"] for k in hits}
        for k, o in moved.items():
            hits[k] += abs(gt["av_offset"] - o - k) <= 1
        offsets.append(gt["av_offset"])
        lines.append(
            f"| {path.stem} | {gt['av_offset']:+.0f} | {gt['av_confidence']:.3f} | {moved[3]:+.0f} | {moved[7]:+.0f} |"
        )
    lines += [
        "",
        f"Shift recovered within +-1 frame: k=3 on {hits[3]}/{len(clips)}, k=7 on {hits[7]}/{len(clips)}; "
        f"median |offset| on ground truth {np.median(np.abs(offsets)):.0f} frames.",
        "",
    ]
    wins = pairs = 0
    for (mi, ai), (_, aj) in itertools.permutations(signals.values(), 2):
        n = min(len(ai), len(aj)) // hop
        own = av_sync(mi[:n], ai[: n * hop], fps, protocol["avsync"])["av_confidence"]
        other = av_sync(mi[:n], aj[: n * hop], fps, protocol["avsync"])["av_confidence"]
        wins, pairs = wins + (own > other), pairs + 1
    lines += [f"Own audio more confident than another clip's audio (trimmed): {wins}/{pairs} ordered pairs.", ""]
    t0, w0 = time.process_time(), time.perf_counter()
    res = evaluate(Path(args.clips), Path(args.clips), None, protocol)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    seconds = res["video_seconds"]
    lines += [
        f"Full offline metric set (`evaluate()` with the clips as generated and reference: tracking of both, "
        f"weight-free sync, jitter, expression diversity, CPBD, LME, head pose, PSNR, SSIM"
        f"{', identity (' + res['identity_backbone'] + ')' if res['identity_backbone'] else ''}): "
        f"{seconds:.0f} s of video in {cpu:.1f} CPU s (wall {wall:.1f} s) = "
        f"**{cpu / seconds:.2f} CPU s per second of video**. "
        f"Skipped here: {', '.join(res['skipped_metrics']) or 'none'}.",
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
