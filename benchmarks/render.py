"""Control-renderer throughput on ONE core: semantic + coords + warped reference per frame.

Every clip of the preprocessed shards (--shards, default data/real_shards from
`vlogger preprocess ../shared/data/clips data/real_shards`) is rendered with its tracked
landmarks as the face mesh and its pose joints as the body proxy, warping the clip's first
frame, in chunks of --batch frames, at 128 and 256 px. The reference is prepared once per
clip (timed apart). frames/s uses the process CPU time (one intra-op thread, so one core's
work even when the machine is shared); wall time is shown beside it.

    python -m benchmarks.render [--shards DIR] [--batch 25 50] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch

from benchmarks.common import machine, publish
from vlogger.body.facemesh import FaceBasis
from vlogger.body.params import body_from_pose
from vlogger.body.render import ControlRenderer
from vlogger.core.config import REPO_ROOT
from vlogger.core.video import decode_frames
from vlogger.datasets.shards import all_shard_urls, clip_arrays

CROP = 256  # the shards' crop size, the pixels landmarks are in


def load_clips(root: Path) -> list[dict]:
    """Landmarks, joints, visibility and first frame of every clip in the shards."""
    try:
        members = list(clip_arrays(all_shard_urls(root), ["lmk.npy", "pose.npy", "mp4"]))
    except FileNotFoundError as e:
        raise SystemExit(f"{e} (run `vlogger preprocess --input ../shared/data/clips --out {root}`)") from e
    clips = []
    for m in members:
        joints, visible = body_from_pose(m["pose.npy"])
        image = torch.from_numpy(decode_frames(m["mp4"], [0])).permute(0, 3, 1, 2).float() / 255
        lmk = torch.from_numpy(m["lmk.npy"])
        clips.append(
            {"lmk": lmk, "joints": torch.from_numpy(joints), "visible": torch.from_numpy(visible), "image": image}
        )
    return clips


def run(clips: list[dict], basis: FaceBasis, size: int, batch: int) -> dict[str, float]:
    renderer = ControlRenderer(
        torch.from_numpy(basis.faces), torch.from_numpy(basis.labels), torch.from_numpy(basis.mean), size
    )
    s = size / CROP
    frames = ref_cpu = cpu = wall = 0.0
    for c in clips:
        t0 = time.process_time()
        ref = renderer.reference(c["image"], c["lmk"][:1], c["joints"][:1], c["visible"][:1])
        ref_cpu += time.process_time() - t0
        n = len(c["lmk"])
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(0, n, batch):
            j = slice(i, min(i + batch, n))
            renderer(c["lmk"][j] * s, ref, c["joints"][j] * s, c["visible"][j])
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        frames += n
    return {"frames": frames, "cpu": cpu, "wall": wall, "ref_ms": 1000 * ref_cpu / len(clips)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", default=str(REPO_ROOT / "data" / "real_shards"))
    ap.add_argument("--batch", type=int, nargs="+", default=[25, 50])
    ap.add_argument("--append", help="append the result table to this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clips = load_clips(Path(args.shards))
    basis = FaceBasis.load()
    run(clips[:1], basis, 128, args.batch[0])  # warm-up
    rows = []
    for size in (128, 256):
        for batch in args.batch:
            r = run(clips, basis, size, batch)
            rows.append(
                f"| {size} | {batch} | **{r['frames'] / r['cpu']:.0f}** | {1000 * r['cpu'] / r['frames']:.2f} "
                f"| {r['frames'] / r['wall']:.0f} | {r['ref_ms']:.1f} |"
            )
    n_frames = sum(len(c["lmk"]) for c in clips)
    lines = [
        f"### Control renderer, {datetime.date.today()} ({machine()}), torch {torch.__version__}, 1 thread",
        "",
        f"{len(clips)} clips, {n_frames} frames: face mesh ({len(basis.faces)} triangles) + body proxy, "
        "semantic + coords + warped reference per frame. Target: 100 frames/s at 128 px on one core.",
        "",
        "| px | frames per call | frames/s (CPU time) | ms/frame | frames/s (wall) | reference prep, ms |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
