"""Generation speed per stage: stage 1, the renderer, stage 2 and super-resolution, frames/s of
each and in all, time to the first frame, peak memory, and FLOPs per output frame.

The controls are those `vlogger generate` renders, from a synthetic clip's own motion (made here
in seconds, no ../shared); the frames go through `vlogger.generation.pipeline.video_chunks`,
the streaming cascade `vlogger generate` runs, so the time to the first frame is what a user of
`--stream` waits: stage 1 over the whole recording, then the first window of every model.
Stage 1 runs on random mel rows of the recording's length (its output is timed, not rendered).
Untrained weights: speed does not depend on them. Time per stage: inside each model's `sample`
(synchronised on a GPU), the renderer and frame conversion being the rest of the cascade's time;
wall time on a GPU, on CPU the process's CPU time (one thread: one core's work, whatever else
the shared machine runs; the wall time of the cascade is in the JSON beside it).

FLOPs (torch.utils.flop_counter, matmuls, convolutions and attention) per output frame in the
steady state: one network call (both classifier-free-guidance halves when guided) on a window,
times the sampler's steps, over the window's new frames; counted on the meta device, so the
base configs' figures come without running them. Stage 1: a counted run of it.

    python -m benchmarks.speed                    # CPU: tiny configs, 64 and 128 px, 1 s, 10 steps
    python -m benchmarks.speed --device cuda      # GPU: base configs, 128 and 256 px, 10 s, bf16
        [--seconds S] [--steps N] [--json out.json] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import machine, publish
from vlogger.core.config import load_config
from vlogger.generation.pipeline import BodyFiles, MotionResult, Sampling, video_chunks
from vlogger.models.video.unet import CONTROL_CHANNELS, IMAGE_CHANNELS
from vlogger.training.motion import MotionDiffusion
from vlogger.training.video import VideoDiffusion

TRAIN = "configs/train"


@dataclass(frozen=True)
class Cascade:
    """One row: stage 1's config, stage 2's overlays (over video.yaml), and each
    super-resolution model's overlays (over stage 2's)."""

    name: str
    motion: tuple[str, ...]
    stage2: tuple[str, ...]
    superres: tuple[tuple[str, ...], ...] = ()


TINY = (
    Cascade("64 px", (), ()),
    Cascade("128 px, superres_tiny", (), (), ((f"{TRAIN}/superres_tiny.yaml",),)),
    Cascade(
        "128 px, superres_tiny_fast", (), (), ((f"{TRAIN}/superres_tiny.yaml", f"{TRAIN}/superres_tiny_fast.yaml"),)
    ),
)
BASE = f"{TRAIN}/video_base.yaml"
BASE_SR = (BASE, f"{TRAIN}/superres_base.yaml")
GPU = (
    Cascade("128 px", (f"{TRAIN}/motion_base.yaml",), (BASE,)),
    Cascade("256 px, superres_base", (f"{TRAIN}/motion_base.yaml",), (BASE,), (BASE_SR,)),
    Cascade(
        "256 px, superres_fast", (f"{TRAIN}/motion_base.yaml",), (BASE,), ((*BASE_SR, f"{TRAIN}/superres_fast.yaml"),)
    ),
)


def video_model(overlays: tuple[str, ...], spec, device: str, sets: list[str] = ()) -> VideoDiffusion:
    cfg = load_config(list(overlays), "train/video.yaml", ["phase=clip", *sets])
    return VideoDiffusion(cfg, spec).to(device).eval()


def motion_model(overlays: tuple[str, ...], spec, device: str) -> MotionDiffusion:
    from vlogger.body.motion import MotionLayout

    cfg = load_config(list(overlays), "train/motion.yaml")
    dim = MotionLayout(cfg["model"]["n_expression"]).dim
    return MotionDiffusion(cfg, torch.zeros(dim), torch.ones(dim), spec).to(device).eval()


def synthetic_motion(seconds: float, folder: Path) -> MotionResult:
    """A synthetic clip's own motion, reference and audio over `seconds` (what `--motion-from`
    makes of a real clip)."""
    import webdataset as wds

    from vlogger.core.spec import DataSpec
    from vlogger.datasets.shards import all_shard_urls
    from vlogger.generation.reconstruct import reconstruction
    from vlogger.preprocessing.synthetic import make_synthetic_shards

    make_synthetic_shards(folder, clips=1, seconds=seconds + 0.2, val_identities=())
    raw = next(iter(wds.WebDataset(all_shard_urls(folder), shardshuffle=False, empty_check=False)))
    sample = {**raw, "json": {"source": raw["__key__"], **json.loads(raw["json"])}}
    sample |= {k: np.load(io.BytesIO(raw[k])) for k in ("lmk.npy", "pose.npy")}
    n = round(seconds * sample["json"]["fps"])
    return reconstruction(sample, DataSpec.of_shards(folder), BodyFiles(), 0, 0, n).motion


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def clock(device: str) -> float:
    """Seconds: wall time on a GPU; on CPU the process's CPU time, which with one thread is one
    core's work, whatever else the machine runs (shared machines)."""
    return time.perf_counter() if device == "cuda" else time.process_time()


def timed_sample(module: VideoDiffusion, spent: dict, key: str, device: str) -> None:
    """Time spent inside the module's `sample` accumulates in spent[key]."""
    sample = module.sample

    def run(*args, **kwargs):
        sync(device)
        t = clock(device)
        out = sample(*args, **kwargs)
        sync(device)
        spent[key] += clock(device) - t
        return out

    module.sample = run


def stage1(module: MotionDiffusion, n: int, device: str, steps: int | None) -> tuple[float, float]:
    """(seconds, FLOPs) of stage 1 over n frames of random mel rows."""
    from vlogger.models.motion.generate import generate_long

    d = module.cfg["data"]
    mel = np.random.default_rng(0).normal(size=(n * d["rows_per_frame"], 80)).astype(np.float32)
    ref = torch.zeros(module.layout.reference_dim)
    sync(device)
    t = clock(device)
    generate_long(module, mel, ref, n, torch.Generator(device=device).manual_seed(0), steps=steps)
    sync(device)
    seconds = clock(device) - t
    with FlopCounterMode(display=False) as fc:
        generate_long(module, mel, ref, n, torch.Generator(device=device).manual_seed(0), steps=1)
    return seconds, fc.get_total_flops() * (steps or module.cfg["sampling"]["steps"])


def unet_flops_per_frame(module: VideoDiffusion, steps: int | None, guidance: float | None = None) -> float:
    """FLOPs of the network per output frame in the steady state of outpainting (see above)."""
    cfg = module.cfg
    window, overlap = cfg["data"]["frames"], cfg["guidance"]["overlap"]
    guidance = cfg["sampling"]["guidance"] if guidance is None else guidance
    b, s = (2 if guidance != 1.0 else 1), module.size
    with torch.device("meta"):
        net = type(module.model)(**module.model.config)
        x = torch.zeros(b, window, IMAGE_CHANNELS, s, s)
        low = x if net.config["lowres_input"] else None
        inputs = {
            "reference": torch.zeros(b, IMAGE_CHANNELS, s, s),
            "controls": torch.zeros(b, window, CONTROL_CHANNELS, s, s),
        }
        with FlopCounterMode(display=False) as fc:
            net(x, torch.zeros(b, dtype=torch.long), **inputs, known=x, known_mask=x[:, :, :1], lowres=low)
    return fc.get_total_flops() * (steps or cfg["sampling"]["steps"]) / (window - overlap)


def peak_memory_gb(device: str) -> float:
    """Peak GPU memory allocated, or on CPU the process's peak resident size."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(cascade: Cascade, motion: MotionResult, device: str, steps: int | None, sets: list[str]) -> dict:
    """One row: every stage timed in one streaming pass of the cascade, and its FLOPs."""
    spec = motion.spec
    m1 = motion_model(cascade.motion, spec, device)
    models = [video_model(cascade.stage2, spec, device, sets)]
    models += [video_model((*cascade.stage2, *sr), spec, device, sets) for sr in cascade.superres]
    keys = ["stage 2", *[f"super-resolution {m.size} px" for m in models[1:]]]
    n = len(motion.motion)
    warmup = time.perf_counter()
    if device == "cuda":  # warm-up: cuDNN autotuning, the allocator, compiling (sampling.compile)
        list(video_chunks(_first_second(motion), models, Sampling(steps=1, device=device)))
        torch.cuda.reset_peak_memory_stats()
    warmup = time.perf_counter() - warmup
    spent = dict.fromkeys(keys, 0.0)
    for m, k in zip(models, keys, strict=True):
        timed_sample(m, spent, k, device)
    t1, flops1 = stage1(m1, n, device, steps)
    t, wall = clock(device), time.perf_counter()
    first = None
    for _ in video_chunks(motion, models, Sampling(steps=steps, device=device)):
        first = first or clock(device) - t
    cascade_s, wall = clock(device) - t, time.perf_counter() - wall
    flops = {"stage 1": flops1 / n, **{k: unet_flops_per_frame(m, steps) for k, m in zip(keys, models, strict=True)}}
    seconds = {"stage 1": t1, "renderer and frames": cascade_s - sum(spent.values()), **spent}
    return {
        "name": cascade.name + "".join(f", {x}" for x in sets),
        "size": models[-1].size,
        "frames": n,
        "steps": {k: steps or m.cfg["sampling"]["steps"] for k, m in zip(keys, models, strict=True)},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "fps": {k: round(n / v, 2) if v > 0 else None for k, v in seconds.items()},
        "fps_all": round(n / (t1 + cascade_s), 3),
        "first_frame_s": round(t1 + first, 2),
        "peak_memory_gb": round(peak_memory_gb(device), 2),
        "gflop_per_frame": {k: round(v / 1e9, 2) for k, v in flops.items()},
        "warmup_s": round(warmup, 1),
        "cascade_wall_s": round(wall, 1),
        "params_m": [round(sum(p.numel() for p in m.model.parameters()) / 1e6, 2) for m in models],
    }


def _first_second(motion: MotionResult) -> MotionResult:
    from dataclasses import replace

    from vlogger.body.control_video import params_slice

    n = min(motion.fps, len(motion.motion))
    return replace(motion, params=params_slice(motion.params, 0, n), motion=motion.motion[:n])


def flops_only(cascades: tuple[Cascade, ...], spec, steps: int | None) -> list[dict]:
    """FLOPs per output frame of each model of the cascades, without running them."""
    rows = []
    for c in cascades:
        for overlays in [c.stage2, *[(*c.stage2, *sr) for sr in c.superres]]:
            m = video_model(overlays, spec, "cpu")
            flops = round(unet_flops_per_frame(m, steps) / 1e9, 2)
            rows.append(
                {
                    "cascade": c.name,
                    "size": m.size,
                    "steps": steps or m.cfg["sampling"]["steps"],
                    "gflop_per_frame": flops,
                }
            )
    return rows


def report(out: dict) -> list[str]:
    lines = [
        f"### Generation speed per stage (`python -m benchmarks.speed --device {out['device_arg']}`), "
        f"{datetime.date.today()} ({out['machine']})",
        "",
        f"{out['seconds']:g} s of audio ({out['rows'][0]['frames']} frames), untrained weights, load average "
        f"{out['load'][0]:.1f} before / {out['load'][1]:.1f} after; "
        + ("wall time." if out["device_arg"] == "cuda" else "CPU time of the one thread (robust to the load)."),
        "",
        "| cascade | steps | stage 1 | renderer + frames | stage 2 | super-resolution | in all | first frame "
        "| peak memory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        fps, g = r["fps"], r["gflop_per_frame"]
        cell = {k: f"{v} f/s" + (f" ({g[k]:.1f} GFLOP/f)" if k in g else "") for k, v in fps.items()}
        sr = ", ".join(v for k, v in cell.items() if k.startswith("super")) or "-"
        steps = "/".join(str(s) for s in r["steps"].values())
        lines.append(
            f"| {r['name']} | {steps} | {cell['stage 1']} | {cell['renderer and frames']} | {cell['stage 2']} | {sr} | "
            f"{r['fps_all']} f/s | {r['first_frame_s']} s | {r['peak_memory_gb']} GiB |"
        )
    lines += ["", "FLOPs per output frame of the base configs at their steps (counted on the meta device):", ""]
    lines += [
        f"- {f['cascade']}, the {f['size']}-px model: {f['gflop_per_frame'] / 1e3:.1f} TFLOP ({f['steps']} steps)"
        for f in out["flops_base"]
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, help="audio length (default: 1 on CPU, 10 on a GPU)")
    ap.add_argument(
        "--steps", type=int, help="sampler steps of every model (default: 10 on CPU, the configs' on a GPU)"
    )
    ap.add_argument("--only", nargs="+", help="the cascades (rows) to run, by name")
    ap.add_argument(
        "--set", action="append", default=[], help="override for every video model, e.g. sampling.compile=true"
    )
    ap.add_argument("--json")
    ap.add_argument("--append", help="add the markdown table to this file (benchmarks/RESULTS.md)")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    seconds = args.seconds or (10.0 if cuda else 1.0)
    steps = args.steps or (None if cuda else 10)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    cascades = [c for c in (GPU if cuda else TINY) if not args.only or c.name in args.only]
    import os

    out = {"device_arg": args.device, "machine": torch.cuda.get_device_name() if cuda else machine()}
    out |= {"seconds": seconds, "steps": steps, "torch": torch.__version__, "rows": []}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        motion = synthetic_motion(seconds, Path(tmp))
    for c in cascades:
        out["rows"].append(run(c, motion, args.device, steps, args.set))
        print(json.dumps(out["rows"][-1]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
    out["load"] = [load, os.getloadavg()[0]]
    out["flops_base"] = flops_only(GPU, motion.spec, None)  # at the configs' steps, as a GPU run samples
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    publish(report(out), args.append)


if __name__ == "__main__":
    main()
