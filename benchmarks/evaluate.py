"""Evaluation suite on the real clips: the weight-free sync table and the metric throughput.

1. Per clip: the detected AV offset on the ground truth, with the audio delayed by 3 and 7
   frames, and the sync confidence (issue 6's "relative shift" and "ground truth" checks).
2. Throughput: `evaluate()` over all clips as generated AND reference (so every paired
   metric runs and each video is tracked twice), in CPU seconds per second of video.

    python -m benchmarks.evaluate [--clips DIR] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, publish
from vlogger.core import landmarks
from vlogger.core.avsync import av_sync
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation.runner import evaluate
from vlogger.evaluation.tracks import eval_tracker, track_video


def delayed(audio: np.ndarray, frames: int, hop: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames * hop, np.float32), audio])[: len(audio)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(REPO_ROOT.parent / "shared" / "data" / "clips"))
    ap.add_argument("--append")
    args = ap.parse_args()
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
    seconds = sum(len(e[0]) for e in res["_examples"].values()) / fps
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
