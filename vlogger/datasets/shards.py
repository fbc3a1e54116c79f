"""Stream preprocessed clips back from WebDataset shards as training windows.

A window is N consecutive frames with their audio, mel rows (plus context), landmarks and
pose, and one reference frame of the same clip taken far from the window (VLOGGER samples
the reference away from the target so the model cannot copy it).
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import webdataset as wds

from vlogger.models.audio import mel_window


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
    from vlogger.body.params import from_npz

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


def decode_frames(mp4: bytes, indices: Sequence[int]) -> np.ndarray:
    """Frames at the given indices (T, H, W, 3) uint8, decoding only up to the last one."""
    import av  # video decode only where frames are read (motion training reads none)

    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    with av.open(io.BytesIO(mp4)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted[-1]:
                break
    missing = [i for i in wanted if i not in got]
    if missing:
        raise ValueError(f"clip has no frame {missing[0]} (truncated video member?)")
    return np.stack([got[i] for i in indices])


def pick_window(n_frames: int, window: int, min_ref_gap: int, rng: random.Random) -> tuple[int, int]:
    """(start, reference index): a random window and a reference at least min_ref_gap frames
    outside it when the clip allows, else the frame farthest from the window."""
    start = rng.randint(0, n_frames - window)
    far = [i for i in range(n_frames) if i < start - min_ref_gap or i >= start + window + min_ref_gap]
    if far:
        return start, rng.choice(far)
    return start, 0 if start >= n_frames - start - window else n_frames - 1


class ToWindow:
    """Raw sample -> window dict; a callable class so DataLoader workers can pickle it."""

    def __init__(self, window: int, mel_context: int, min_ref_gap: int, seed: int):
        self.window, self.mel_context, self.min_ref_gap = window, mel_context, min_ref_gap
        self.rng = random.Random(seed)

    def __call__(self, sample: dict) -> dict:
        meta = json.loads(sample["json"])
        n, w = meta["n_frames"], self.window
        if n < w:
            raise ValueError(f"{sample['__key__']}: {n} frames < window {w}")
        start, ref = pick_window(n, w, self.min_ref_gap, self.rng)
        from vlogger.io.audio import from_flac

        frames = decode_frames(sample["mp4"], [*range(start, start + w), ref])
        audio, sr = from_flac(sample["flac"])
        per_frame = sr // meta["fps"]
        mel = np.load(io.BytesIO(sample["mel.npy"]))
        lmk = np.load(io.BytesIO(sample["lmk.npy"]))
        pose = np.load(io.BytesIO(sample["pose.npy"]))
        r = meta["mel"]["rows_per_frame"]
        return {
            "key": sample["__key__"],
            "identity": meta["identity"],
            "start": start,
            "ref_index": ref,
            "frames": frames[:w],
            "ref_frame": frames[w],
            "audio": audio[start * per_frame : (start + w) * per_frame].astype(np.float32),
            "mel": mel_window(mel, start, w, r, self.mel_context).astype(np.float32),
            "lmk": lmk[start : start + w],
            "ref_lmk": lmk[ref],
            "pose": pose[start : start + w],
        }


def clip_windows(
    urls: str | Sequence[str],
    window: int = 50,
    mel_context: int = 2,
    min_ref_gap: int = 25,
    shuffle: int = 0,
    seed: int = 0,
) -> wds.WebDataset:
    """A webdataset pipeline of windows; shards are split across DDP ranks and loader workers.

    Each rank (RANK/WORLD_SIZE or torch.distributed) reads a disjoint subset of shards, so
    give at least as many shards as ranks x workers.
    """
    ds = wds.WebDataset(
        urls,
        shardshuffle=100 if shuffle else False,
        nodesplitter=wds.split_by_node,
        workersplitter=wds.split_by_worker,
        seed=seed,
        empty_check=False,
        handler=wds.warn_and_continue,
    )
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed)
    return ds.map(ToWindow(window, mel_context, min_ref_gap, seed), handler=wds.warn_and_continue)
