"""A PNG grid of preprocessed clips with their landmarks drawn, so a person can check crops."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import webdataset as wds

from vlogger.core.errors import UsageError
from vlogger.core.landmarks import FORMATS
from vlogger.core.video import decode_frames


def annotate(frame: np.ndarray, lmk: np.ndarray, pose: np.ndarray, fmt: str) -> np.ndarray:
    """Face points in green, lips in red, shoulders/elbows in blue."""
    img = frame.copy()
    for x, y, *_ in lmk[:: 4 if len(lmk) > 100 else 1]:
        cv2.circle(img, (int(x), int(y)), 1, (0, 255, 0), -1)
    for i in FORMATS[fmt]["lips"]:
        cv2.circle(img, (int(lmk[i, 0]), int(lmk[i, 1])), 2, (255, 0, 0), -1)
    for x, y, _, vis in pose[11:15]:
        if vis > 0.5:
            cv2.circle(img, (int(x), int(y)), 4, (0, 0, 255), -1)
    return img


def contact_sheet(urls: list[str], out: Path, per_clip: int = 4, tile: int = 160) -> Path:
    """One row per clip: `per_clip` frames spread over the clip, key written on the first."""
    rows = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        idx = np.linspace(0, meta["n_frames"] - 1, per_clip).astype(int).tolist()
        frames = decode_frames(sample["mp4"], idx)
        lmk = np.load(io.BytesIO(sample["lmk.npy"]))
        pose = np.load(io.BytesIO(sample["pose.npy"]))
        tiles = [
            cv2.resize(
                annotate(f, lmk[i], pose[i], meta["landmark_format"]), (tile, tile), interpolation=cv2.INTER_AREA
            )
            for f, i in zip(frames, idx, strict=True)
        ]
        cv2.putText(tiles[0], sample["__key__"][:24], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1)
        rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        raise UsageError(f"no samples in {urls}")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return out
