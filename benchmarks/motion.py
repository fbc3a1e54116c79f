"""Stage 1 on the real clips: training time and loss, audio dependence, outpainting seams.

1. Trains the tiny config (or --config) on ../shared/data/clips preprocessed (two identities held
   out) plus the synthetic demo sample, timing it; validation loss per part of the motion vector.
2. Audio dependence on the held-out clips: jaw opening (first expression coefficient) sampled
   from the clip's own audio vs. from another clip's audio, correlated with the ground truth,
   over several seeds.
3. On a new synthetic clip (a seed the training sample did not use): correlation of the sampled
   jaw with the signal that drove its mouth.
4. Outpainting over the 60 s clip's audio: frame-to-frame change at window borders vs. inside.

    python -m benchmarks.motion [--config configs/train/motion_base.yaml] [--set k=v] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import machine, publish
from vlogger.body.motion import reference_of, reference_vector, to_motion
from vlogger.core.config import REPO_ROOT, apply_overrides, load_config, merge
from vlogger.datasets.shards import all_shard_urls, clip_arrays
from vlogger.generation.pipeline import load_motion_model
from vlogger.models.motion.generate import generate_long, seam_jumps
from vlogger.models.sampling import window_starts

SHARED = REPO_ROOT.parent / "shared" / "data"
HELD_OUT = ["retalking_face5", "upperbody_kim_7s"]
SEEDS = range(5)
PARTS = ("expression", "jaw", "rotation", "translation", "body")  # MotionLayout.parts, in table order


def _preprocess(inputs: Path, out: Path, extra: list[str]) -> Path:
    from vlogger.preprocessing.run import preprocess

    if not (out / "index.json").is_file():
        preprocess(inputs, out, load_config(None, "preprocess/default.yaml", extra), workers=2)
    return out


def _clips(root: Path) -> dict[str, dict]:
    return {c["key"]: c for c in clip_arrays(all_shard_urls(root), ["params.npz", "mel.npy"])}


def _jaw_corr(module, clip: dict, mel: np.ndarray, seed: int) -> float:
    """Correlation of sampled vs. true jaw (first expression coefficient, Δ to frame 0)."""
    p = clip["params.npz"]
    ref = reference_of(p, 0)
    n = len(p["expression"])
    k = module.layout.n_expression
    gen = torch.Generator().manual_seed(seed)
    sampled = generate_long(module, mel[: n * 4], reference_vector(ref, k, module.motion_layout()), n, gen)[:, 0]
    truth = to_motion(p, ref, k)[:, 0]
    return float(np.corrcoef(sampled.numpy(), truth.numpy())[0, 1])


def _synthetic(module, tmp: Path) -> list[float]:
    from vlogger.preprocessing.sample import make_sample

    (path,) = make_sample(tmp / "synthetic_new" / "astronaut", n_clips=1, seconds=6.0, seed=7)
    shards = _preprocess(tmp / "synthetic_new", tmp / "synthetic_new_shards", ["shards.identity_from=parent"])
    clip = next(iter(_clips(shards).values()))
    drive = np.load(path.with_suffix(".drive.npy"))
    p = clip["params.npz"]
    n = len(p["expression"])
    start = clip["json"]["source_frames"][0]
    k = module.layout.n_expression
    out, ref = [], reference_vector(reference_of(p, 0), k, module.motion_layout())
    for seed in SEEDS:
        gen = torch.Generator().manual_seed(seed)
        jaw = generate_long(module, clip["mel.npy"], ref, n, gen)[:, 0]
        out.append(float(np.corrcoef(jaw.numpy(), drive[start : start + n])[0, 1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="merged over configs/train/motion.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--work", default="data/bench_motion", help="shards and run folder (kept for reuse)")
    ap.add_argument("--append", help="append the result tables to this markdown file")
    args = ap.parse_args()
    from vlogger.preprocessing.sample import make_sample
    from vlogger.training.run import train_motion

    work = Path(args.work)
    real = _preprocess(SHARED / "clips", work / "real_shards", ["shards.max_clips=3"])
    if not (work / "sample").is_dir():
        make_sample(work / "sample" / "astronaut", n_clips=3, seconds=6.0, seed=0)
    demo = _preprocess(work / "sample", work / "demo_shards", ["shards.identity_from=parent"])
    cfg = load_config(args.config, "train/motion.yaml")
    data = {"shards": [str(real), str(demo)], "val_identities": HELD_OUT}
    cfg = merge(cfg, {"data": data, "logging": {"dir": str(work / "runs"), "logger": "csv"}}, "benchmarks.motion")
    cfg = apply_overrides(cfg, args.set)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = train_motion(cfg)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    module = load_motion_model(summary["last_checkpoint"])
    clips = _clips(real)
    held = [c for k, c in clips.items() if k.split("-")[0] in HELD_OUT]
    rows = []
    for clip in held:
        n_rows = len(clip["mel.npy"])
        ident = clip["json"]["identity"]
        others = [
            c["mel.npy"] for c in clips.values() if c["json"]["identity"] != ident and len(c["mel.npy"]) >= n_rows
        ]
        own = [_jaw_corr(module, clip, clip["mel.npy"], s) for s in SEEDS]
        swapped = [_jaw_corr(module, clip, mel, s) for mel in others for s in SEEDS]
        rows.append(
            f"| {clip['key']} | {n_rows // 4} | {np.mean(own):.2f} ± {np.std(own):.2f} | "
            f"{np.mean(swapped):.2f} ± {np.std(swapped):.2f} ({len(others)} clips) |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        synth = _synthetic(module, Path(tmp))
    long_clip = next(c for k, c in clips.items() if k.startswith("hdtf"))
    long_mel = np.concatenate([clips[k]["mel.npy"] for k in sorted(clips) if k.startswith("edtalk")])
    n_long = len(long_mel) // 4
    k = module.layout.n_expression
    t1 = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    ref_vec = reference_vector(reference_of(long_clip["params.npz"], 0), k, module.motion_layout())
    motion = generate_long(module, long_mel, ref_vec, n_long, gen)
    gen_s = time.perf_counter() - t1
    starts = window_starts(n_long, cfg["data"]["window"], cfg["guidance"]["overlap"])
    face = seam_jumps(motion, starts, cfg["guidance"]["overlap"], module.layout.face)
    jaw = seam_jumps(motion, starts, cfg["guidance"]["overlap"], module.layout.jaw)
    s = cfg["sampling"]
    lines = [
        f"### Stage 1 (motion), {datetime.date.today()} ({machine()})",
        "",
        f"Config: tiny{' + ' + args.config if args.config else ''} {' '.join(args.set)}; data: 9 real clips "
        f"({', '.join(HELD_OUT)} held out by identity) + 3 synthetic demo clips.",
        f"Training {summary['global_step']} steps: wall {wall / 60:.1f} min, CPU {cpu / 60:.1f} min of this process, "
        f"{summary['steps_per_s']} steps/s, {summary['samples_per_s']} windows/s. Validation diffusion loss "
        f"{summary['val_loss_start']:.3f} before training -> {summary['val_loss_end']:.3f} after; per part of the "
        "motion vector (the loss over its dimensions, normalised units):",
        "",
        "| validation loss | " + " | ".join(PARTS) + " |",
        "|---" * (len(PARTS) + 1) + "|",
        *(
            f"| {when} training | " + " | ".join(f"{summary[key][f'loss_{p}']:.3f}" for p in PARTS) + " |"
            for when, key in (("before", "val_start"), ("after", "val_end"))
        ),
        "",
        f"Audio dependence on held-out clips: correlation of the sampled jaw (first expression coefficient) with "
        f"the ground truth, {len(SEEDS)} seeds, {s['sampler']} {s['steps']} steps, guidance {s['guidance']}; "
        "'other audio' = the same clip driven by each other identity's clip at least as long (× the seeds):",
        "",
        "| held-out clip | frames | own audio r | other audio r |",
        "|---|---|---|---|",
        *rows,
        "",
        f"New synthetic clip (seed 7, not in training): sampled jaw vs. its mouth-driving signal, r = "
        f"{np.mean(synth):.2f} ± {np.std(synth):.2f} over {len(SEEDS)} seeds ({[round(v, 2) for v in synth]}).",
        "",
        f"Outpainting over {n_long} frames ({n_long / 25:.0f} s of the 60 s clip's audio, {len(starts)} windows, "
        f"overlap {cfg['guidance']['overlap']}): generated in {gen_s:.1f} s wall; mean frame-to-frame change at "
        f"window borders / inside windows = {face['border_mean']:.3f} / {face['inside_mean']:.3f} "
        f"(ratio {face['ratio']:.2f}) on the face dimensions, {jaw['ratio']:.2f} on the jaw.",
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
