"""Cost of cutting dataset clips (`vlogger dataset fetch`'s CPU part) and what HDTF asks for.

Cuts real clips from ../shared/data/clips the way a fetch does (PyAV, libx264 crf 18 veryfast):
the 1080p upper-body clip kept whole and cropped to 512 px, the HDTF clip cropped to 512 px.
frames/s uses the process CPU time (so a shared machine's load does not count), wall beside it;
MB/h is the clip's size per hour of video. Then the HDTF recipe's own figures (from the
official annotation files) and the cutting CPU time they imply.

    python -m benchmarks.dataset_fetch [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, publish
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.preprocessing.recipes import hdtf
from vlogger.preprocessing.recipes.cut import cut, source_info
from vlogger.preprocessing.recipes.spec import Crop

DATA = REPO_ROOT.parent / "shared" / "data"
CASES = [  # name, clip, crop window (in the clip's own pixels), output side
    ("1080p, full frame", "upperbody_kim_7s.mp4", None, 0),
    ("1080p -> 600 px window -> 512", "upperbody_kim_7s.mp4", Crop((660, 40, 1260, 640), (1920, 1080)), 512),
    ("512p HDTF -> 384 px window -> 512", "hdtf_WDA_KatieHill_000.mp4", Crop((64, 32, 448, 416), (512, 512)), 512),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--append")
    args = ap.parse_args()
    enc = load_config(None, "dataset/fetch.yaml")["cut"]
    lines = [
        f"\n## Dataset recipes (issue 16): cutting clips, {datetime.date.today()} ({machine()})\n",
        "| cut | frames | frames/s (CPU time) | frames/s (wall) | MB per hour of video |",
        "|---|---|---|---|---|",
    ]
    rate_512 = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, clip, crop, size in CASES:
            src = DATA / "clips" / clip
            info = source_info(src)
            dest = Path(tmp) / f"{len(lines)}.mp4"
            c0, w0 = time.process_time(), time.perf_counter()
            meta = cut(src, None, dest, (0.0, min(7.0, info.duration)), crop, size, enc)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            mb_h = dest.stat().st_size / 1e6 / meta["seconds"] * 3600
            lines.append(
                f"| {name} | {meta['frames']} | {meta['frames'] / cpu:.0f} | {meta['frames'] / wall:.0f} | {mb_h:.0f} |"
            )
            if size == 512 and info.height >= 1080:
                rate_512 = meta["frames"] / cpu
    recipe = hdtf.parse(DATA / "recipes" / "hdtf")
    hours = sum(c.end - c.start for c in recipe.clips) / 3600
    last = {}
    for c in recipe.clips:
        last[c.source] = max(last.get(c.source, 0.0), c.end)
    lines += [
        "",
        f"HDTF from the official files: {len(recipe.sources)} source videos, {len(recipe.clips)} clips "
        f"({len(recipe.invalid)} annotated span left out: overlaps its video's previous one), {hours:.1f} h of clips, "
        f"{len({c.identity for c in recipe.clips})} people; the sources run at least {sum(last.values()) / 3600:.1f} h "
        "(each to its last annotated second; whole videos are downloaded). Cutting all clips from 1080p sources "
        f"at the 1080p -> 512 rate above: {hours * 3600 * 25 / rate_512 / 3600:.1f} CPU hours (25 fps).",
    ]
    publish(lines, args.append)


if __name__ == "__main__":
    main()
