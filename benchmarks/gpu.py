"""GPU checks: the control renderer on CUDA vs. CPU, and stage-1 training throughput in bf16.

1. Renderer: one real clip's fitted parameters rendered on CPU and on CUDA (same inputs, a
   seeded reference image): largest difference of the controls, share of pixels whose region
   differs, and CUDA frames/s at 128 and 256 px.
2. Stage 1: the base config (bf16-mixed) trained for --minutes on the given shards: steps/s,
   samples/s, peak GPU memory, validation loss; and the model alone (forward + backward on a
   batch held on the GPU), which shows how much of the step time the data loader costs.

    python -m benchmarks.gpu --shards REAL_SHARDS DEMO_SHARDS --minutes 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from benchmarks.common import bf16_train_rate
from vlogger.body.control_video import ClipRenderer
from vlogger.body.fitting import load_body
from vlogger.core.config import apply_overrides, load_config
from vlogger.datasets.shards import all_shard_urls, clip_arrays
from vlogger.preprocessing.run import default_spec

HELD_OUT = ["retalking_face5", "upperbody_kim_7s"]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def renderer_check(shards: str, frames: int = 100) -> dict:
    mesh = load_body("facemesh").mesh
    clip = next(iter(clip_arrays(all_shard_urls(shards), ["params.npz"])))
    p = clip["params.npz"]
    src = int(p["size"])
    image = np.random.default_rng(0).integers(0, 256, (src, src, 3), dtype=np.uint8)
    one = {k: p[k][:1] for k in ("expression", "rotation", "scale", "translation", "body", "body_visible")}
    ref = {**one, "identity": p["identity"], "size": src}
    part = {**{k: p[k][:frames] for k in one}, "identity": p["identity"]}
    out: dict = {"clip": clip["key"], "frames": frames}
    cpu = torch.cat([c.stacked for c in ClipRenderer(mesh, image, ref, 128).controls(part, src, 100)])
    if not torch.cuda.is_available():
        return out | {"cuda": False}
    cuda_r = ClipRenderer(mesh, image, ref, 128, "cuda")
    gpu = torch.cat([c.stacked for c in cuda_r.controls(part, src, 100)]).cpu()
    out["max_abs_diff"] = float((gpu - cpu).abs().max())
    out["region_mismatch_fraction"] = float((gpu[:, :7].argmax(1) != cpu[:, :7].argmax(1)).float().mean())
    for size in (128, 256):
        r = ClipRenderer(mesh, image, ref, size, "cuda")
        list(r.controls(part, src, 100))  # warm-up
        _sync()
        t0 = time.perf_counter()
        for _ in range(5):
            list(r.controls(part, src, 100))
        _sync()
        out[f"cuda_fps_{size}"] = round(5 * frames / (time.perf_counter() - t0), 1)
    return out


def model_only(cfg: dict, steps: int = 30) -> dict:
    """Optimiser steps on one batch kept on the GPU: the ceiling without data loading."""
    from vlogger.body.motion import MotionLayout
    from vlogger.training.motion import MotionDiffusion

    dev = "cuda"
    m, spec = cfg["model"], default_spec()
    layout = MotionLayout.of_parts(m["n_expression"], spec.model_parts(m["parts"], "model.parts"), m["hand_components"])
    dim = layout.dim
    module = MotionDiffusion(cfg, torch.zeros(dim), torch.ones(dim), spec).to(dev)
    d = cfg["data"]
    b = d["batch_size"]
    batch = {
        "motion": torch.randn(b, d["window"], dim, device=dev),
        "mel": torch.randn(b, (d["window"] + 2 * d["mel_context"]) * d["rows_per_frame"], 80, device=dev),
        "ref": torch.randn(b, layout.reference_dim, device=dev),
    }
    rate, _ = bf16_train_rate(module, batch, steps)
    return {"steps_per_s": round(rate, 2), "samples_per_s": round(rate * b, 1), "batch": b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", nargs="+", required=True)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--config", default="configs/train/motion_base.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--json", required=True, help="write the results here")
    args = ap.parse_args()
    results = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    results["renderer"] = renderer_check(args.shards[0])
    print(json.dumps(results), flush=True)
    from vlogger.training.run import train_motion

    cfg = load_config(args.config, "train/motion.yaml")
    minutes = int(args.minutes * 60)
    cfg["data"] |= {"shards": args.shards, "val_identities": HELD_OUT}
    cfg["logging"] |= {"logger": "csv", "media_every_steps": 0, "dir": "/tmp/runs"}
    cfg["trainer"] |= {"max_time": f"00:00:{minutes // 60:02d}:{minutes % 60:02d}", "max_steps": 10**7}
    cfg = apply_overrides(cfg, args.set)
    if torch.cuda.is_available():
        results["model_only"] = model_only(cfg)
        print(json.dumps(results), flush=True)
    results["training"] = train_motion(cfg)
    results["config"] = {k: cfg[k] for k in ("data", "model", "trainer")}
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
