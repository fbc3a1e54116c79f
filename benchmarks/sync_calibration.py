"""Calibration of the weight-free sync score (issue 14) on real clips.

1. Null table: mouth segments of L frames against audio segments that do not belong to them
   (another clip, or the same clip at a non-overlapping time), for L = 50..750: mean and std of
   the confidence, protocol 1.0's (best within +-8 minus the median over +-15, inner-lip gap,
   sigma 1) beside protocol 2.0's (null-subtracted, one window).
2. Own audio vs another clip's audio (both trimmed to the shorter), every ordered pair, per folder.
3. Per clip: offset and confidence on the ground truth, and the offset with the audio delayed.

    python -m benchmarks.sync_calibration [--folders DIR ...] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
from pathlib import Path

import numpy as np

from benchmarks.common import machine, publish
from vlogger.core import landmarks
from vlogger.core.avsync import SyncSettings, band_energies, sync_curve, sync_from_velocities, velocity
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.mel import LogMel
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation.tracks import eval_tracker, track_video

LENGTHS = (50, 125, 250, 500, 750)
MAX_PAIRS = 600  # per length, drawn with a fixed seed
DATA = REPO_ROOT.parent / "shared" / "data"


def v1_confidence(inner_gap: np.ndarray, bands: np.ndarray) -> float:
    """Protocol 1.0's confidence: best correlation within +-8 minus the median over +-15 (sigma 1)."""
    curve = sync_curve(velocity(inner_gap, 1.0), velocity(bands, 1.0), 15)
    return float(curve[7:24].max() - np.median(curve)) if not np.allclose(curve, 0) else 0.0


def load(folder: Path, protocol: dict, mel: LogMel) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (outer-lip opening, inner-lip gap, band energies) per frame; silent tracks left out."""
    tracker, fps = eval_tracker(protocol), protocol["video"]["fps"]
    bands, hop = protocol["avsync"]["mel_bands"], protocol["audio"]["sample_rate"] // fps
    out = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in (".mp4", ".mpg")):
        v = track_video(path, protocol, tracker)
        if v.audio is None or np.abs(v.audio).max() < 1e-3:
            print(f"left out (silent audio track): {path.name}")
            continue
        n = min(v.n_frames, len(v.audio) // hop)
        lmk = v.lmk[:n]
        energies = band_energies(v.audio[: n * hop], n, fps, bands, mel)
        out[path.stem] = (
            landmarks.lip_opening(lmk, v.landmark_format),
            landmarks.mouth_opening(lmk, v.landmark_format),
            energies,
        )
    return out


def score(s: SyncSettings, mouth: np.ndarray, bands: np.ndarray):
    return sync_from_velocities(velocity(mouth, s.smooth_sigma), velocity(bands, s.smooth_sigma), s)


def null_table(signals: dict, s: SyncSettings) -> list[str]:
    rng = np.random.default_rng(0)
    lines = [
        "| length (frames) | pairs | 1.0 null mean | 1.0 null std | 2.0 null mean | 2.0 null std "
        "| 2.0 z mean | 2.0 z std |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for length in LENGTHS:
        stride = length if length < 500 else length // 5  # few clips are that long: overlapping segments
        segs = [(k, i) for k, (m, _, _) in signals.items() for i in range(0, len(m) - length + 1, stride)]
        pairs = [(x, y) for x, y in itertools.permutations(segs, 2) if x[0] != y[0] or abs(x[1] - y[1]) >= length]
        if len(pairs) > MAX_PAIRS:
            pairs = [pairs[i] for i in rng.choice(len(pairs), MAX_PAIRS, replace=False)]
        old, new, z = [], [], []
        for (ki, i), (kj, j) in pairs:
            outer, inner, _ = (x[i : i + length] for x in signals[ki])
            bands = signals[kj][2][j : j + length]
            old.append(v1_confidence(inner, bands))
            res = score(s, outer, bands)
            new.append(res.confidence)
            z.append(res.z)
        lines.append(
            f"| {length} | {len(pairs)} | {np.mean(old):.3f} | {np.std(old):.3f} | {np.mean(new):+.3f} | "
            f"{np.std(new):.3f} | {np.mean(z):+.2f} | {np.std(z):.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


def own_vs_other(signals: dict, s: SyncSettings) -> tuple[int, int, int]:
    """(2.0 wins, 1.0 wins, ordered pairs): own audio more confident than another clip's."""
    new = old = pairs = 0
    for (outer, inner, own), (_, _, other) in itertools.permutations(signals.values(), 2):
        n = min(len(outer), len(other))
        new += score(s, outer[:n], own[:n]).confidence > score(s, outer[:n], other[:n]).confidence
        old += v1_confidence(inner[:n], own[:n]) > v1_confidence(inner[:n], other[:n])
        pairs += 1
    return new, old, pairs


def per_clip(signals: dict, s: SyncSettings) -> list[str]:
    """Offsets on the ground truth and with the band energies delayed by 3 and 7 frames."""
    lines = [
        "| clip | frames | offset | confidence | z | offset, audio +3 | offset, audio +7 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (outer, _, bands) in signals.items():
        gt = score(s, outer, bands)
        moved = [
            score(s, outer, np.concatenate([np.repeat(bands[:1], k, 0), bands])[: len(bands)]).offset for k in (3, 7)
        ]
        lines.append(
            f"| {name} | {len(outer)} | {gt.offset:+.0f} | {gt.confidence:.3f} | {gt.z:.1f} "
            f"| {moved[0]:+.0f} | {moved[1]:+.0f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folders", nargs="+", default=[str(DATA / "clips"), str(DATA / "corpus")])
    ap.add_argument("--append")
    args = ap.parse_args()
    filter_native_logs()
    protocol = load_config(None, "eval/protocol.yaml")
    s, mel = SyncSettings.from_config(protocol["avsync"]), LogMel()
    folders = {Path(f).name: load(Path(f), protocol, mel) for f in args.folders}
    everything = {f"{f}/{k}": v for f, sig in folders.items() for k, v in sig.items()}
    lines = [
        f"### Weight-free sync calibration, {datetime.date.today()} ({machine()}), protocol {protocol['version']}",
        "",
        f"Null: mouth of one segment against the audio of another (other clip, or same clip at a disjoint time), "
        f"{', '.join(folders)} together, at most {MAX_PAIRS} pairs per length:",
        "",
        *null_table(everything, s),
        "",
        "Own audio more confident than another clip's audio (both trimmed to the shorter; ordered pairs):",
        "",
        "| folder | clips | pairs | protocol 1.0 | protocol 2.0 |",
        "|---|---|---|---|---|",
    ]
    for name, signals in folders.items():
        new, old, pairs = own_vs_other(signals, s)
        lines.append(
            f"| {name} | {len(signals)} | {pairs} | {old}/{pairs} ({old / pairs:.0%}) "
            f"| {new}/{pairs} ({new / pairs:.0%}) |"
        )
        print(lines[-1], flush=True)
    lines += ["", "Per clip (offset > 0: mouth after sound; delaying the audio by k moves it by -k):", ""]
    for name, signals in folders.items():
        lines += [f"{name}:", "", *per_clip(signals, s), ""]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
