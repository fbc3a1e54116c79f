"""Compare two `benchmarks/same_output.sh` folders: shard members byte for byte, training summaries and
checkpoint weights, generated and reconstructed frames and motion (what a refactor must leave unchanged)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from vlogger.core.video import decode_mp4_bytes


def _samples(root: Path) -> dict[str, dict]:
    urls = sorted(str(u) for u in root.glob("shards/shard-*.tar"))
    return {s["__key__"]: s for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)}


def _frames(path: Path) -> np.ndarray:
    return decode_mp4_bytes(path.read_bytes()).astype(np.int16)


def compare(a: Path, b: Path) -> list[str]:
    lines = []
    if (a / "shards").is_dir() and (b / "shards").is_dir():
        sa, sb = _samples(a), _samples(b)
        same = sa.keys() == sb.keys() and all(sa[k][m] == sb[k].get(m) for k in sa for m in sa[k] if m[:2] != "__")
        lines.append(f"shards ({len(sa)} clips): {'every member byte-identical' if same else 'DIFFERENT'}")
        for run in ("motion-tiny", "video-tiny"):
            ja, jb = (json.loads((d / "runs" / run / "summary.json").read_text()) for d in (a, b))
            keys = ("val_loss_start", "val_loss_end", "global_step")
            lines.append(f"{run} summary: " + ", ".join(f"{k} {ja[k]} / {jb[k]}" for k in keys))
            ca, cb = (
                torch.load(d / "runs" / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
                for d in (a, b)
            )
            wa, wb = ca["state_dict"], cb["state_dict"]
            same = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
            lines.append(f"{run} weights: {'identical' if same else 'DIFFERENT'}")
    for sub in ("gen", "recon"):
        for f in sorted(p.name for p in (a / sub).glob("*.mp4")):
            fa, fb = _frames(a / sub / f), _frames(b / sub / f)
            if fa.shape == fb.shape and np.array_equal(fa, fb):
                lines.append(f"{sub}/{f} {fa.shape}: frames bit-identical")
            else:
                d = np.abs(fa - fb)
                lines.append(f"{sub}/{f} {fa.shape}: DIFFERENT, max {d.max()} mean {d.mean():.3f} on 0-255")
        za, zb = dict(np.load(a / sub / "motion.npz")), dict(np.load(b / sub / "motion.npz"))
        worst = max(float(np.abs(za[k] - zb[k]).max()) for k in za if za[k].dtype.kind == "f")
        lines.append(f"{sub}/motion.npz: {'identical' if worst == 0 else f'max abs difference {worst:.3g}'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args()
    print("\n".join(compare(args.before, args.after)))


if __name__ == "__main__":
    main()
