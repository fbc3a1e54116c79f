"""Drift metrics (issue 14) on long real clips: the clip as recorded, the same clip frozen after
10 s (its frame at 10 s repeated), and the clip with a tint that grows to +12 in Lab b* (warmer)
by its end, so the table shows what a stable face, a frozen one and a colour drift each score.

    python -m benchmarks.drift [--clips PATH ...] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
from skimage.color import lab2rgb, rgb2lab

from benchmarks.common import machine, publish
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation.drift import ShrunkFrames, block_indices, drift_profile, slope_per_minute
from vlogger.evaluation.identity import make_backbone
from vlogger.evaluation.tracks import eval_tracker, open_video, track_source

DATA = REPO_ROOT.parent / "shared" / "data"
CLIPS = [DATA / "clips" / "edtalk_pose_source2.mp4", DATA / "corpus" / "dfrf_cnn2_25fps.mp4"]
FREEZE_S, TINT_B = 10.0, 12.0


def tinted(frame: np.ndarray, amount: float) -> np.ndarray:
    lab = rgb2lab(frame / 255.0)
    lab[..., 2] += amount
    return (lab2rgb(lab) * 255).round().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=[str(p) for p in CLIPS])
    ap.add_argument("--append")
    args = ap.parse_args()
    filter_native_logs()
    protocol = load_config(None, "eval/protocol.yaml")
    cfg, fps = protocol["drift"], protocol["video"]["fps"]
    backbone, tracker = make_backbone(cfg["backbone"]), eval_tracker(protocol)
    lines = [
        f"### Drift on long clips, {datetime.date.today()} ({machine()}), protocol {protocol['version']}",
        "",
        f"Per {cfg['block_seconds']:g}-s block against the first {cfg['reference_seconds']:g} s "
        f"({cfg['frames_per_block']} frames each, {backbone.name} identity); slopes per minute:",
        "",
        "| clip | variant | blocks | identity per block | colour ΔE00 per block | identity slope /min "
        "| colour slope /min | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in map(Path, args.clips):
        source = open_video(path, protocol)
        blocks = block_indices(source.n_frames, fps, cfg)
        reader = ShrunkFrames(source, np.concatenate(blocks))
        track = track_source(source, tracker, lambda start, chunk, r=reader: r.add(start, chunk, None))
        lmk, kept = track.face, reader.kept[0]
        freeze = max(i for i in kept if i <= FREEZE_S * fps)
        last = source.n_frames - 1
        variants = {
            "as recorded": (kept, lmk),
            f"frozen after {FREEZE_S:g} s": (
                {i: kept[min(i, freeze)] for i in kept},
                np.where((np.arange(len(lmk)) > freeze)[:, None, None], lmk[freeze], lmk),
            ),
            f"tint to +{TINT_B:g} b* by the end": ({i: tinted(f, TINT_B * i / last) for i, f in kept.items()}, lmk),
        }
        times = (np.arange(len(blocks) - 1) + 0.5) * cfg["block_seconds"]
        for name, (frames, marks) in variants.items():
            t0 = time.process_time()
            prof = drift_profile(frames, marks, reader.scale, blocks, backbone)
            cpu = time.process_time() - t0
            slopes = slope_per_minute(times, prof["identity"]), slope_per_minute(times, prof["colour"])
            lines.append(
                f"| {path.stem} | {name} | {len(blocks) - 1} | {' '.join(f'{x:.3f}' for x in prof['identity'])} "
                f"| {' '.join(f'{x:.1f}' for x in prof['colour'])} | {slopes[0]:+.4f} | {slopes[1]:+.2f} | {cpu:.1f} |"
            )
            print(lines[-1], flush=True)
    publish([*lines, ""], args.append)


if __name__ == "__main__":
    main()
