"""Stage 2 with and without hand controls (issue 21), on upper-body clips with gesturing hands, on CPU.

1. Preprocesses CLIPS (a folder of links under data/) with configs/preprocess/upper_body.yaml into
   data/hands_shards, and VAL_CLIP (another upper-body speaker) into the same folder as its
   validation split; the last --holdout-s seconds of every clip are kept out of training
   (data.holdout_tail_s).
2. Trains two tiny stage-2 models (configs/train/video.yaml) identical but for `model.parts`:
   [face, body, hands, eyes] ("hand controls": hand and iris classes in the controls, the hands in
   the warped reference) and [face, body] ("no hand controls"): phase single, then phase clip from
   its EMA weights, both models side by side (one OpenMP thread each) with the same seed, data,
   max_steps and trainer.max_time, which ends them first on a CPU: nearly the same steps (existing
   checkpoints are reused).
3. Reconstructs each clip's held-out tail with both (what `vlogger generate --motion-from` does, from
   the shards' tracked clip instead of tracking it again; the clip's frame 0 as reference, same
   sampler steps and seed) beside the warped-reference baseline, and
   scores PSNR/SSIM against the ground-truth crop in the hand regions (each seen hand's tracked
   points, their convex hull dilated by size/32 px, frames with a hand only) and on the whole frame.
4. A picture: crops around a hand, truth | hand controls | no hand controls | warped reference.

    python -m benchmarks.hands_stage2 [--runs data/hands_runs] [--out data/bench_hands_stage2]
        [--size 64] [--single-time 00:00:25:00] [--clip-time 00:00:24:00] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import block_interval, machine, publish
from vlogger.core.config import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "data"
CLIPS = ("corpus/latentsync_demo1_video.mp4", "corpus/latentsync_demo3_video.mp4", "clips/upperbody_kim_7s.mp4")
VAL_CLIP = "corpus/spectre_mead_W023_level_2_surprised_010.mp4"
PREPROCESS = "configs/preprocess/upper_body.yaml"
DATA = REPO_ROOT / "data"
MODELS = {"hands": "[face,body,hands,eyes]", "no_hands": "[face,body]"}
KINDS = {"hands": "hand controls", "no_hands": "no hand controls", "baseline": "warped reference"}


def vlogger(*args: str, threads: int | None = None) -> subprocess.Popen:
    """Start a `vlogger` command as a user would (with `threads` OpenMP threads)."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.Popen([sys.executable, "-m", "vlogger.cli", *args], env=env)


def preprocess(clips: tuple[str, ...], out: Path, links: Path, *sets: str) -> Path:
    """Shards of `clips` (linked from the folder `links`) added to `out` unless index.json lists them."""
    index = out / "index.json"
    done = {c["identity"] for c in json.loads(index.read_text())["clip_list"]} if index.is_file() else set()
    if {Path(c).stem for c in clips} - done:
        links.mkdir(parents=True, exist_ok=True)
        for c in clips:
            if not (links / Path(c).name).exists():
                (links / Path(c).name).symlink_to(SHARED / c)
        args = ["preprocess", "--input", str(links), "--out", str(out), "--config", PREPROCESS, "--workers", "1"]
        if vlogger(*args, *[a for s in sets for a in ("--set", s)]).wait():
            raise SystemExit(f"preprocessing {links} failed")
    return out


def train_pair(runs: Path, phase: str, sets: dict[str, list[str]], threads: int) -> dict[str, Path]:
    """One phase of both models at once (same load on each); last.ckpt per model. A run whose
    checkpoint exists is reused; the wall time goes beside it (bench_seconds.json)."""
    started, procs = time.perf_counter(), {}
    for name, extra in sets.items():
        run = f"{name}-{phase}"
        if not (runs / run / "checkpoints" / "last.ckpt").is_file():
            args = [*extra, f"phase={phase}", f"logging.dir={runs}", f"logging.name={run}", "logging.logger=csv"]
            args += [f"model.parts={MODELS[name]}"]
            procs[name] = vlogger("train", "video", *[a for s in args for a in ("--set", s)], threads=threads)
    for name, p in procs.items():
        if p.wait():
            raise SystemExit(f"training {name}-{phase} failed")
        seconds = time.perf_counter() - started
        (runs / f"{name}-{phase}" / "bench_seconds.json").write_text(json.dumps({"seconds": seconds}))
    return {name: runs / f"{name}-{phase}" / "checkpoints" / "last.ckpt" for name in sets}


def shard_clip(shards: Path, identity: str) -> dict:
    """The first clip of `identity` in the shards as preprocessing made it (crop video, tracks,
    params.npz, audio): what `vlogger generate --motion-from` would track again."""
    import webdataset as wds

    urls = sorted(str(p) for p in shards.glob("shard-*.tar"))
    for raw in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        meta = json.loads(raw["json"])
        if meta["identity"] == identity and raw["__key__"].endswith("-000"):
            arrays = {k: np.load(io.BytesIO(raw[k])) for k in ("lmk.npy", "pose.npy")}
            return {**raw, **arrays, "json": meta}
    raise SystemExit(f"{shards}: no clip of {identity}")


def reconstruct(sample: dict, first: int, ckpt: Path, out: Path, steps: int) -> Path:
    """`vlogger generate --motion-from` of a preprocessed clip from frame `first` on (frame 0 the
    reference, seed 0) into `out`: video.mp4, motion.npz, ground_truth.mp4, warped_reference.mp4.
    The clip's tracks come from the shards instead of tracking the video once per model."""
    from vlogger.generation.pipeline import BodyFiles, Sampling, generate_video, write_motion
    from vlogger.generation.reconstruct import reconstruction, write_references
    from vlogger.training.checkpoints import read_checkpoint

    if not (out / "ground_truth.mp4").is_file():
        t = time.perf_counter()
        cfg, spec, _ = read_checkpoint(ckpt, "video")
        rec = reconstruction(sample, spec, BodyFiles(cfg["model"]["basis"], None), 0, first)
        video = generate_video(rec.motion, ckpt, out, Sampling(seed=0, steps=steps))
        write_motion(rec.motion, out, len(video[0]))
        write_references(rec, out, len(video[0]))
        (out / "bench_seconds.json").write_text(json.dumps({"seconds": time.perf_counter() - t}))
    return out


def hand_masks(motion: Path, size: int) -> np.ndarray:
    """(T, size, size) bool: every hand seen in at least 3 tracked points, the convex hull of its
    seen points (motion.npz's `hands`, crop pixels) dilated by size/32 px."""
    import cv2

    with np.load(motion) as z:
        hands, seen, src = z["hands"], z["hand_visible"] > 0.5, float(z["size"])
    masks = np.zeros((len(hands), size, size), np.uint8)
    for t, side in zip(*np.nonzero(seen.sum(-1) >= 3), strict=True):
        pts = hands[t, side, seen[t, side], :2] * (size / src)
        cv2.fillConvexPoly(masks[t], cv2.convexHull(pts.round().astype(np.int32)), 1)
    r = max(1, round(size / 32))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return np.stack([cv2.dilate(m, kernel) for m in masks]).astype(bool)


def score(gens: dict[str, Path]) -> dict:
    """Hand-region and whole-frame PSNR/SSIM of both models' videos and the warped reference
    against the ground truth, per frame (JSON-ready lists) and in the mean."""
    from vlogger.core.video import decode_mp4_bytes
    from vlogger.evaluation.region import region_scores

    read = lambda p: decode_mp4_bytes(p.read_bytes())  # noqa: E731
    truth = read(gens["hands"] / "ground_truth.mp4")
    if not np.array_equal(truth, read(gens["no_hands"] / "ground_truth.mp4")):
        raise SystemExit("the two reconstructions' ground truths differ")
    videos = {k: read(g / "video.mp4") for k, g in gens.items()}
    videos["baseline"] = read(gens["hands"] / "warped_reference.mp4")
    mask = hand_masks(gens["hands"] / "motion.npz", truth.shape[1])
    full = np.ones_like(mask)
    out = {"frames": len(truth), "size": truth.shape[1], "hand_frames": int(mask.any((1, 2)).sum())}
    out["hand_pixels"] = float(mask.sum((1, 2))[mask.any((1, 2))].mean()) if out["hand_frames"] else 0.0
    for kind, v in videos.items():
        out[kind] = {"whole": {k: v.tolist() for k, v in region_scores(v, truth, full).items()}}
        if out["hand_frames"]:
            out[kind]["hands"] = {k: v.tolist() for k, v in region_scores(v, truth, mask).items()}
    return out


def picture(gens: dict[str, dict[str, Path]], scores: dict, path: Path, n: int = 6, side: int = 96) -> Path:
    """PNG: `n` held-out frames (those with the largest hand region, spread over the clips), a
    square crop around the hand in each video, truth | hand controls | no hand controls | warped."""
    import cv2

    from vlogger.core.video import decode_mp4_bytes

    picks = []  # (pixels, clip, frame)
    for clip, s in scores.items():
        if "hands" in s["hands"]:
            h = s["hands"]["hands"]
            order = np.argsort(h["pixels"])[::-1][: max(1, n // 2)]
            picks += [(h["pixels"][i], clip, h["frame"][i]) for i in order]
    picks = sorted(picks, reverse=True)[:n]
    rows = []
    for _, clip, t in picks:
        g = gens[clip]
        vids = [g["hands"] / "ground_truth.mp4", g["hands"] / "video.mp4", g["no_hands"] / "video.mp4"]
        vids.append(g["hands"] / "warped_reference.mp4")
        frames = [decode_mp4_bytes(p.read_bytes())[t] for p in vids]
        m = hand_masks(g["hands"] / "motion.npz", frames[0].shape[0])[t]
        ys, xs = np.nonzero(m)
        half = int(max(np.ptp(ys), np.ptp(xs), 16)) // 2 + 4
        cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
        pad = [np.pad(f, ((half, half), (half, half), (0, 0)), mode="edge") for f in frames]
        crops = [p[cy : cy + 2 * half, cx : cx + 2 * half] for p in pad]
        row = [cv2.resize(c, (side, side), interpolation=cv2.INTER_NEAREST) for c in crops]
        rows.append(np.concatenate([np.pad(r, ((1, 1), (1, 1), (0, 0)), constant_values=255) for r in row], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def summarise(scores: dict) -> dict:
    """Mean hand-region and whole-frame PSNR/SSIM per clip and over all frames, and the paired
    per-frame gain of hand controls over none (mean and 95 % interval)."""
    table = {}
    for name, rows in [*((c, {c: s}) for c, s in scores.items()), ("all", scores)]:
        t = table[name] = {"frames": sum(s["frames"] for s in rows.values())}
        t["hand_frames"] = sum(s["hand_frames"] for s in rows.values())
        weights = [s["hand_frames"] for s in rows.values()]
        t["hand_pixels"] = (
            float(np.average([s["hand_pixels"] for s in rows.values()], weights=weights)) if any(weights) else 0.0
        )
        for region in ("hands", "whole"):
            for kind in KINDS:
                for metric in ("psnr", "ssim"):
                    v = [x for s in rows.values() if region in s[kind] for x in s[kind][region][metric]]
                    t[f"{region}_{kind}_{metric}"] = float(np.mean(v)) if v else None
            gain = [
                np.subtract(s["hands"][region]["psnr"], s["no_hands"][region]["psnr"])
                for s in rows.values()
                if region in s["hands"]
            ]
            if gain:
                gain = np.concatenate(gain)
                t[f"{region}_gain_psnr"] = [float(gain.mean()), *block_interval(gain)]
    return table


def report(table: dict, train: dict, gen_seconds: dict, args: argparse.Namespace) -> list[str]:
    """The markdown block for RESULTS.md."""
    fmt = lambda v, d: "n/a" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = [
        f"### Stage 2 with and without hand controls, {datetime.date.today()} ({machine()})",
        "",
        f"`python -m benchmarks.hands_stage2 --size {args.size} --single-time {args.single_time} "
        f"--clip-time {args.clip_time}`; reconstruction of the last {args.holdout_s:g} s of each clip, DDIM "
        f"{args.steps} steps, seed 0.",
        "",
        "| run | steps | wall time | validation loss start -> end |",
        "|---|---|---|---|",
    ]
    for run, t in train.items():
        sm = t["summary"]
        loss = f"{sm.get('val_loss_start', float('nan')):.4f} -> {sm.get('val_loss_end', float('nan')):.4f}"
        lines.append(f"| {run} | {sm.get('global_step')} | {t['seconds'] / 60:.1f} min | {loss} |")
    lines += [
        "",
        "| clip | frames (with a hand) | hand px/frame | output | hands PSNR | hands SSIM | frame PSNR | frame SSIM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for clip, t in table.items():
        for i, (kind, label) in enumerate(KINDS.items()):
            head = [clip, f"{t['frames']} ({t['hand_frames']})", f"{t['hand_pixels']:.0f}"] if i == 0 else ["", "", ""]
            row = [fmt(t[f"hands_{kind}_psnr"], 2), fmt(t[f"hands_{kind}_ssim"], 3)]
            row += [fmt(t[f"whole_{kind}_psnr"], 2), fmt(t[f"whole_{kind}_ssim"], 3)]
            lines.append("| " + " | ".join([*head, label, *row]) + " |")
    lines += ["", "Per-frame PSNR of hand controls minus no hand controls (95 % interval, 8-frame blocks):", ""]
    for clip, t in table.items():
        for region in ("hands", "whole"):
            if f"{region}_gain_psnr" in t:
                m, lo, hi = t[f"{region}_gain_psnr"]
                lines.append(f"- {clip}, {region}: {m:+.2f} dB [{lo:+.2f}, {hi:+.2f}]")
    lines.append(f"\nGeneration: {', '.join(f'{k} {v:.0f} s' for k, v in gen_seconds.items())}.")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="data/hands_runs", help="training runs (existing checkpoints are reused)")
    ap.add_argument("--out", default="data/bench_hands_stage2")
    ap.add_argument("--size", type=int, default=64, help="stage 2's training size")
    ap.add_argument("--holdout-s", type=float, default=4.0, help="seconds at the end of each clip held out")
    ap.add_argument("--single-steps", type=int, default=1500, help="phase single (the time limit ends it first here)")
    ap.add_argument("--clip-steps", type=int, default=400, help="phase clip (the time limit ends it first here)")
    ap.add_argument("--single-time", default="00:00:25:00", help="trainer.max_time of phase single (each model)")
    ap.add_argument("--clip-time", default="00:00:24:00", help="trainer.max_time of phase clip (each model)")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads per training run (both run at once)")
    ap.add_argument("--steps", type=int, default=10, help="sampler steps for generation")
    ap.add_argument("--clips", nargs="+", help="reconstruct only these clips (stems; default: all of CLIPS)")
    ap.add_argument("--picture", default="docs/images/issue21_stage2_hands.png")
    ap.add_argument("--append", help="add the markdown block to this file (benchmarks/RESULTS.md)")
    args = ap.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shards = preprocess(CLIPS, DATA / "hands_shards", DATA / "hands_in")
    preprocess((VAL_CLIP,), shards, DATA / "hands_val_in", "shards.val_fraction=1.0")  # the validation split
    tails = ", ".join(f"{Path(c).stem}: {args.holdout_s}" for c in CLIPS)  # not the short validation clip's
    common = [f"data.shards={shards}", f"data.holdout_tail_s={{{tails}}}", f"data.size={args.size}"]
    common += ["seed=0", "logging.media_every_steps=100000"]
    single_sets = [*common, f"trainer.max_steps={args.single_steps}", f"trainer.max_time={args.single_time}"]
    single_sets.append(f"trainer.val_every_steps={max(1, args.single_steps // 2)}")
    single = train_pair(runs, "single", dict.fromkeys(MODELS, single_sets), args.threads)
    clip_sets = [*common, f"trainer.max_steps={args.clip_steps}", f"trainer.max_time={args.clip_time}"]
    clip_sets += ["data.batch_size=2", f"trainer.val_every_steps={max(1, args.clip_steps // 2)}"]
    clip = train_pair(runs, "clip", {m: [*clip_sets, f"model.init_from={single[m]}"] for m in MODELS}, args.threads)
    train = {
        f"{m}-{p}": {
            "seconds": json.loads((runs / f"{m}-{p}" / "bench_seconds.json").read_text())["seconds"],
            "summary": json.loads((runs / f"{m}-{p}" / "summary.json").read_text()),
        }
        for p in ("single", "clip")
        for m in MODELS
    }
    gens, scores, gen_seconds = {}, {}, {}
    for c in CLIPS:
        stem = Path(c).stem
        if args.clips and stem not in args.clips:
            continue
        sample = shard_clip(shards, stem)
        first = sample["json"]["n_frames"] - round(args.holdout_s * sample["json"]["fps"])  # never trained on
        gens[stem] = {m: reconstruct(sample, first, clip[m], out / stem / m, args.steps) for m in MODELS}
        for m, g in gens[stem].items():
            gen_seconds[f"{stem} {m}"] = json.loads((g / "bench_seconds.json").read_text())["seconds"]
        scores[stem] = score(gens[stem])
    table = summarise(scores)
    pic = picture(gens, scores, Path(args.picture))
    (out / "results.json").write_text(json.dumps({"train": train, "scores": scores, "table": table}, indent=1))
    print(f"picture {pic}")
    publish(report(table, train, gen_seconds, args), args.append)


if __name__ == "__main__":
    main()
