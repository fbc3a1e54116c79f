"""Preprocessed clips in WebDataset shards: where they are and their arrays without video decode.

A window is N consecutive frames with their audio, mel rows (plus context), landmarks and
pose, and one reference frame of the same clip taken far from the window (VLOGGER samples
the reference away from the target so the model cannot copy it).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import webdataset as wds

from vlogger.body.params import from_npz


def shard_urls(root: str | Path, split: str = "train") -> list[str]:
    """The finished shards of one split (every job's), sorted."""
    urls = sorted(str(p) for p in Path(root).glob(f"shard-{split}-*.tar"))
    if not urls:
        raise FileNotFoundError(f"no shard-{split}-*.tar in {root} (run `vlogger preprocess` first)")
    return urls


def all_shard_urls(root: str | Path, splits: Sequence[str] = ("train", "val")) -> list[str]:
    """Shards of every split that exists under root (at least one must)."""
    urls = sorted(str(p) for split in splits for p in Path(root).glob(f"shard-{split}-*.tar"))
    if not urls:
        raise FileNotFoundError(f"no shard-{{{','.join(splits)}}}-*.tar in {root} (run `vlogger preprocess` first)")
    return urls


def clip_arrays(urls: Sequence[str], members: Sequence[str] = ("lmk.npy", "pose.npy")) -> Iterator[dict]:
    """Each clip's json and the named members (npy as arrays, params.npz as a dict, others as
    bytes), without decoding video: what fitting, statistics and the renderer's checks read."""

    for sample in wds.WebDataset(list(urls), shardshuffle=False, empty_check=False):
        out = {"key": sample["__key__"], "json": json.loads(sample["json"])}
        for m in members:
            if m not in sample:
                raise KeyError(f"{sample['__url__']}: clip {sample['__key__']} has no {m} member")
            if m.endswith(".npz"):
                out[m] = from_npz(sample[m])
            else:
                out[m] = np.load(io.BytesIO(sample[m])) if m.endswith(".npy") else sample[m]
        yield out
