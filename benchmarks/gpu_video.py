"""Stage-2 network on a GPU: training step throughput and peak memory, model only (bf16).

Optimiser steps on batches kept on the GPU (no data loading), for phase `single` (frames) and
phase `clip` (windows of frames, temporal layers on), with the base config at 128 px.

    python -m benchmarks.gpu_video [--config configs/train/video_base.yaml] [--steps 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmarks.common import bf16_train_rate
from vlogger.core.config import apply_overrides, load_config
from vlogger.preprocessing.run import default_spec
from vlogger.training.video import VideoDiffusion


def measure(cfg: dict, batch: int, frames: int, steps: int, checkpointing: bool) -> dict:
    cfg = {**cfg, "phase": "clip" if frames > 1 else "single"}
    cfg["model"] = {**cfg["model"], "gradient_checkpointing": checkpointing}
    module = VideoDiffusion(cfg, default_spec()).cuda().train()
    s = cfg["data"]["size"]
    data = {
        "frames": torch.randn(batch, frames, 3, s, s, device="cuda").clamp(-1, 1),
        "reference": torch.randn(batch, 3, s, s, device="cuda").clamp(-1, 1),
        "controls": torch.rand(batch, frames, module.model.control_channels, s, s, device="cuda"),
    }
    rate, loss = bf16_train_rate(module, data, steps)
    return {
        "phase": cfg["phase"],
        "batch": batch,
        "frames": frames,
        "checkpointing": checkpointing,
        "steps_per_s": round(rate, 2),
        "frames_per_s": round(rate * batch * frames, 1),
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "loss": round(loss, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train/video_base.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    cfg = apply_overrides(load_config(args.config, "train/video.yaml"), args.set)
    params = sum(p.numel() for p in VideoDiffusion(cfg, default_spec()).model.parameters())
    out = {"device": torch.cuda.get_device_name(), "parameters_m": round(params / 1e6, 1), "runs": []}
    for batch, frames, ckpt in [(32, 1, False), (4, 8, False), (4, 8, True), (8, 16, True)]:
        out["runs"].append(measure(cfg, batch, frames, args.steps, ckpt))
        print(json.dumps(out["runs"][-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
