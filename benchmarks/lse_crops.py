"""LSE crop geometry: `fast` (face-mesh box, 5-frame median) against `reference` (syncnet_python's S3FD
tracks, 13-frame median), per clip: the crop centre's difference and the crop size's ratio, in units of the
reference crop's half size s. Needs the S3FD weights (`vlogger zoo fetch s3fd_face`).

    python -m benchmarks.lse_crops [--clips DIR] [--append benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine, publish
from vlogger.core.config import REPO_ROOT, load_config
from vlogger.core.tracking import filter_native_logs
from vlogger.evaluation import crops
from vlogger.evaluation.s3fd import detect_faces, load_s3fd
from vlogger.evaluation.tracks import eval_tracker, track_video


def geometry(boxes: np.ndarray) -> np.ndarray:
    """(n, 3) half size s, centre x, centre y of x0, y0, x1, y1 boxes."""
    return np.stack([np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2, *(
        (boxes[:, i] + boxes[:, i + 2]) / 2 for i in (0, 1))], axis=1)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(REPO_ROOT.parent / "shared" / "data" / "clips"))
    ap.add_argument("--append")
    args = ap.parse_args()
    filter_native_logs()
    protocol = load_config(None, "eval/protocol.yaml")
    detector, tracker = load_s3fd(), eval_tracker(protocol)
    lines = [
        f"### LSE crop geometry, fast vs reference, {datetime.date.today()} ({machine()})",
        "",
        "| clip | frames compared | centre offset / s (median) | size ratio fast / reference (median) |",
        "|---|---|---|---|",
    ]
    for path in sorted(Path(args.clips).glob("*.mp4")):
        v = track_video(path, protocol, tracker)
        native = replace(v.source, size=(v.source.info.width, v.source.info.height))
        dets = [
            detect_faces(detector, cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
            for c in native.chunks()
            for f in crops.jpeg(c[..., ::-1])
        ]
        tracks = crops.face_tracks(dets)
        if not tracks:
            lines.append(f"| {path.stem} | 0 (no reference track) | – | – |")
            continue
        span, boxes = max(tracks, key=lambda t: len(t[0]))
        ref = crops.smoothed(boxes)
        scale = native.size[0] / v.source.size[0]  # face-mesh boxes are in tracking pixels
        fast = geometry(crops.syncnet_boxes(v.lmk)[span] * scale)
        offset = np.linalg.norm(fast[:, 1:] - ref[:, 1:], axis=1) / ref[:, 0]
        lines.append(
            f"| {path.stem} | {len(span)} | {np.median(offset):.3f} | {np.median(fast[:, 0] / ref[:, 0]):.3f} |"
        )
        print(lines[-1], flush=True)
    publish([*lines, ""], args.append)


if __name__ == "__main__":
    main()
