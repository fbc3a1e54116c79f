"""Stage 1's validation error per part of the motion vector in motion units, comparable between
checkpoints whatever normalisation each was trained with (issue 19): the RMS error of the x0
prediction (EMA weights) over the part's dimensions and the frames not given, in expression
coefficients, 6D-rotation entries and face heights. Same windows and noise as validation
(seed 1000 + batch index), over every validation batch.

    python -m benchmarks.motion_units CKPT [CKPT ...] [--shards DIR ...] [--set k=v] [--append FILE]

Validation data: the checkpoint's own config (shards, held-out identities) unless --shards/--set
name others (say, the same clips preprocessed again beside another checkout).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import publish
from vlogger.core.config import apply_overrides
from vlogger.datasets.motion import MotionDataModule
from vlogger.generation.pipeline import load_motion_model


@torch.no_grad()
def x0_error(ckpt: str | Path, shards: list[str] | None, sets: list[str]) -> dict[str, float]:
    """{part: RMS error in motion units} of one checkpoint over the validation windows."""
    module = load_motion_model(ckpt)
    cfg = apply_overrides(module.cfg, sets)
    if shards:
        cfg["data"]["shards"] = shards
    dm = MotionDataModule(cfg)
    sq, frames = torch.zeros(module.layout.dim), torch.zeros(())
    for i, batch in enumerate(dm.val_dataloader()):
        x0, pred, known = module.predict_x0(batch, module.ema.module, torch.Generator().manual_seed(1000 + i))
        free = 1.0 - known
        sq += ((pred - x0) * module.motion_std).pow(2).mul(free).sum((0, 1))
        frames += free.sum()
    return {name: float((sq[sl] / frames).mean().sqrt()) for name, sl in module.layout.parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--shards", nargs="+", help="validation shard folders (default: the checkpoint's)")
    ap.add_argument("--set", action="append", default=[], help="config override for the validation data")
    ap.add_argument("--append", help="append the table to this markdown file")
    args = ap.parse_args()
    rows = [(c, x0_error(c, args.shards, args.set)) for c in args.checkpoints]
    names = list(rows[0][1])
    lines = [
        "| checkpoint | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        *(f"| {c} | " + " | ".join(f"{e[n]:.4f}" for n in names) + " |" for c, e in rows),
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
