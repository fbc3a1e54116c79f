"""Generation speed on a GPU: frames of output video per second for stage 2 at 128 px and for
stage 2 + super-resolution to 256 px, with the outpainting loop `vlogger generate` runs.

Untrained weights (speed does not depend on them), random controls (rendering costs ~0.3 ms a
frame on a GPU, stage 1 ~0.1 s for 10 s: both left out), DDIM with the configs' steps and
classifier-free guidance (both halves in one batched network call per step), bf16 autocast.
Each run is written to `--json` as soon as it ends, so a run cut off by a time limit keeps
what it measured.

    python -m benchmarks.gpu_generate [--seconds 10] [--sr-seconds 10] [--json out.json]
    python -m benchmarks.gpu_generate --device cpu --stage2 configs/train/video.yaml \
        --superres configs/train/superres_tiny.yaml --seconds 1 --sr-seconds 0.5   # smoke test
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vlogger.core.config import load_config
from vlogger.models.video.generate import generate_frames
from vlogger.preprocessing.run import default_spec
from vlogger.training.video import VideoDiffusion

FPS = 25


def build(device: str, *overlays: str) -> VideoDiffusion:
    cfg = load_config([p for p in overlays if p], "train/video.yaml")
    cfg["phase"] = "clip"
    return VideoDiffusion(cfg, default_spec()).to(device).eval()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None


def timed(module: VideoDiffusion, n: int, lowres: torch.Tensor | None) -> tuple[torch.Tensor, float]:
    s, dev = module.size, module.device.type
    g = torch.Generator(device=dev).manual_seed(0)
    controls = torch.rand(n, module.model.control_channels, s, s, device=dev)
    ref = torch.rand(3, s, s, device=dev) * 2 - 1
    sync(dev)
    t = time.perf_counter()
    with torch.autocast(dev, torch.bfloat16, enabled=dev == "cuda"):
        frames = generate_frames(module, ref, controls, g, lowres=lowres, desc=f"{s} px")
    sync(dev)
    return frames, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="audio length for stage 2 at 128 px")
    ap.add_argument("--sr-seconds", type=float, default=10.0, help="audio length for the 256 px run")
    ap.add_argument("--stage2", default="configs/train/video_base.yaml", help="stage-2 config (over video_tiny)")
    ap.add_argument("--superres", default="configs/train/superres_base.yaml", help="super-resolution config")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    stage2 = build(args.device, args.stage2)
    sr = build(args.device, args.stage2, args.superres)
    out = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "stage2_steps": stage2.cfg["sampling"]["steps"],
        "superres_steps": sr.cfg["sampling"]["steps"],
        "runs": [],
    }

    def record(run: dict) -> None:
        out["runs"].append(run)
        print(json.dumps(run), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)

    timed(stage2, stage2.cfg["data"]["frames"], None)  # warm-up: cuDNN autotuning, allocator
    n = round(args.seconds * FPS)
    frames, dt = timed(stage2, n, None)
    record(
        {
            "size": stage2.size,
            "frames": n,
            "seconds": round(dt, 1),
            "fps": round(n / dt, 2),
            "peak_gpu_memory_gb": peak_gb(args.device),
        }
    )
    m = round(args.sr_seconds * FPS)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    low, dt_low = (frames[:m], dt * m / n) if m <= n else timed(stage2, m, None)
    _, dt_sr = timed(sr, m, low)
    record(
        {
            "size": sr.size,
            "frames": m,
            "stage2_seconds": round(dt_low, 1),
            "superres_seconds": round(dt_sr, 1),
            "fps": round(m / (dt_low + dt_sr), 2),
            "peak_gpu_memory_gb": peak_gb(args.device),
        }
    )


if __name__ == "__main__":
    main()
