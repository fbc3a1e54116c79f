"""What every benchmark script shares: naming the machine and publishing a markdown block."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores"


def publish(lines: list[str], append: str | None) -> None:
    """Print the markdown block and, with `append`, add it to that file (benchmarks/RESULTS.md)."""
    text = "\n".join(lines)
    print(text)
    if append:
        with open(append, "a") as f:
            f.write("\n" + text)


def bf16_train_rate(module, batch: dict, steps: int, warmup: int = 3) -> tuple[float, float]:
    """(optimiser steps per second, last loss) of a diffusion module's `losses` on one batch kept
    on the GPU, bf16 autocast: the training ceiling without data loading. Peak-memory counters
    are reset first, so `torch.cuda.max_memory_allocated()` afterwards is this loop's."""
    import time

    import torch

    opt = torch.optim.AdamW(module.model.parameters(), lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    for i in range(steps + warmup):
        if i == warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = module.losses(batch, module.model, None)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0), loss.item()


def block_interval(diff: np.ndarray, block: int = 8, draws: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of per-frame differences, resampling blocks of `block`
    frames (neighbouring frames are not independent)."""
    chunks = [diff[i : i + block] for i in range(0, len(diff), block)]
    picks = np.random.default_rng(0).integers(0, len(chunks), (draws, len(chunks)))
    means = [np.concatenate([chunks[j] for j in pick]).mean() for pick in picks]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
