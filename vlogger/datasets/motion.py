"""Stage-1 training windows from the shards: audio features, motion vectors, reference.

A window is N consecutive frames of one clip: its log-mel rows (with context frames either
side), the motion vectors of those frames relative to a reference frame of the same clip
taken far from the window (as VLOGGER samples it), and the reference's parameters as a
vector. No video is decoded, so stage 1 reads shards at tar speed.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import webdataset as wds
from torch.utils.data import DataLoader
from webdataset.utils import pytorch_worker_seed

from vlogger.body.motion import MotionStats, motion_stats, reference_of, reference_vector, to_motion
from vlogger.body.params import from_npz
from vlogger.datasets.shards import clip_arrays, pick_window, shard_urls
from vlogger.models.audio import mel_window


class ToMotionWindows:
    """Raw clip sample -> a list of windows (random in training, a fixed grid in validation)."""

    def __init__(
        self,
        window: int,
        mel_context: int,
        min_ref_gap: int,
        n_expression: int,
        per_clip: int | None,
        seed: int,
        basis_id: str | None = None,
    ):
        self.window, self.mel_context, self.min_ref_gap = window, mel_context, min_ref_gap
        self.n_expression, self.per_clip, self.seed, self.basis_id = n_expression, per_clip, seed, basis_id
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """Seeded per rank and loader worker on first use, so every process draws other windows."""
        if self._rng is None:
            self._rng = random.Random(self.seed * 100003 + pytorch_worker_seed())
        return self._rng

    def starts(self, n_frames: int) -> list[tuple[int, int]]:
        """(start, reference) pairs: random ones, or every window-th frame with the farthest reference."""
        if self.per_clip is not None:
            return [pick_window(n_frames, self.window, self.min_ref_gap, self.rng) for _ in range(self.per_clip)]
        grid = range(0, n_frames - self.window + 1, self.window)
        return [(s, 0 if s >= n_frames - s - self.window else n_frames - 1) for s in grid]

    def __call__(self, sample: dict) -> list[dict]:
        meta = json.loads(sample["json"])
        key = sample["__key__"]
        if "params.npz" not in sample:
            raise ValueError(f"{key}: no params.npz (preprocess with fit.body_model set)")
        params = from_npz(sample["params.npz"])
        if self.basis_id and params.get("basis_id") != self.basis_id:
            raise ValueError(f"{key}: params fitted with basis {params.get('basis_id')}, training uses {self.basis_id}")
        n = meta["n_frames"]
        if n < self.window:
            return []
        mel = np.load(io.BytesIO(sample["mel.npy"]))
        r = meta["mel"]["rows_per_frame"]
        out = []
        for start, ref in self.starts(n):
            sl = {k: params[k][start : start + self.window] for k in ("expression", "rotation", "scale")}
            sl |= {k: params[k][start : start + self.window] for k in ("translation", "body", "body_visible")}
            reference = reference_of(params, ref)
            out.append(
                {
                    "key": key,
                    "identity": meta["identity"],
                    "start": start,
                    "ref_index": ref,
                    "motion": to_motion(sl, reference, self.n_expression).numpy(),
                    "ref": reference_vector(reference, self.n_expression).numpy(),
                    "mel": mel_window(mel, start, self.window, r, self.mel_context).astype(np.float32),
                }
            )
        return out


def _unlist(src: Iterator[list[dict]]) -> Iterator[dict]:
    for windows in src:
        yield from windows


def motion_windows(
    urls: Sequence[str],
    window: int,
    mel_context: int,
    n_expression: int,
    min_ref_gap: int = 25,
    per_clip: int | None = 4,
    shuffle: int = 0,
    seed: int = 0,
    resampled: bool = False,
    basis_id: str | None = None,
    exclude_identities: set[str] | None = None,
    max_sync_offset: int | None = None,
) -> wds.DataPipeline:
    """Windows streamed from shards. `resampled` draws shards with replacement, seeded per rank
    and worker (an endless training stream, different on every DDP rank); otherwise shards are
    split across ranks and workers and read once (validation). `exclude_identities` keeps the
    validation identities out; `max_sync_offset` drops clips whose lips and sound are out of step
    by more frames than that (preprocessing's sync score), which would teach the wrong timing."""
    if resampled:
        source = [wds.ResampledShards(list(urls), seed=seed, deterministic=True)]
    else:
        source = [wds.SimpleShardList(list(urls)), wds.split_by_node, wds.split_by_worker]
    stages = [*source, wds.tarfile_to_samples(handler=wds.warn_and_continue)]
    if exclude_identities or max_sync_offset is not None:
        stages.append(wds.select(lambda s: _keep(s, exclude_identities or set(), max_sync_offset)))
    windows = ToMotionWindows(window, mel_context, min_ref_gap, n_expression, per_clip, seed, basis_id)
    stages += [wds.map(windows, handler=wds.warn_and_continue), _unlist]
    if shuffle:
        stages.append(wds.shuffle(shuffle, seed=seed))
    return wds.DataPipeline(*stages)


def _keep(sample: dict, exclude: set[str], max_sync_offset: int | None) -> bool:
    meta = json.loads(sample["json"])
    in_sync = max_sync_offset is None or abs(meta["quality"]["sync_offset"]) <= max_sync_offset
    return meta["identity"] not in exclude and in_sync


class MotionDataModule(L.LightningDataModule):
    """Train/val windows for stage 1. Validation = the shards' val split plus any identities
    named in `data.val_identities` (taken out of training), so a split by identity exists even
    when preprocessing hashed every identity into train. The training stream is endless and
    drawn per rank; `seed_offset` (the resumed step) moves it on after a restart."""

    def __init__(self, cfg: dict, basis_id: str | None = None, seed_offset: int = 0):
        super().__init__()
        self.cfg, self.basis_id, self.seed_offset = cfg, basis_id, seed_offset
        d = cfg["data"]
        roots = [Path(r) for r in ([d["shards"]] if isinstance(d["shards"], str) else d["shards"])]
        self.train_urls = [u for root in roots for u in shard_urls(root, "train")]
        self.val_urls = sorted(str(p) for root in roots for p in root.glob("shard-val-*.tar"))
        self.val_ids = set(d.get("val_identities") or [])
        if not self.val_urls and not self.val_ids:
            raise ValueError(f"{d['shards']}: no val shards; name held-out identities in data.val_identities")

    def stats(self) -> MotionStats:
        """Normalisation statistics over the training clips (never the validation identities)."""
        clips = list(clip_arrays(self.train_urls, ["params.npz"]))
        missing = self.val_ids - {c["json"]["identity"] for c in clips}
        if missing and self.val_urls:  # named identities may already sit in the val split
            missing -= {c["json"]["identity"] for c in clip_arrays(self.val_urls, [])}
        if missing:
            raise ValueError(f"data.val_identities {sorted(missing)} are not in {self.cfg['data']['shards']}")
        params = [c["params.npz"] for c in clips if c["json"]["identity"] not in self.val_ids]
        return motion_stats(params, self.cfg["model"]["n_expression"])

    def _loader(self, ds, shuffle_workers: bool) -> DataLoader:
        d = self.cfg["data"]
        workers = d["num_workers"] if shuffle_workers else 0
        return DataLoader(ds, batch_size=d["batch_size"], num_workers=workers, persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        d = self.cfg["data"]
        ds = motion_windows(
            self.train_urls,
            d["window"],
            d["mel_context"],
            self.cfg["model"]["n_expression"],
            d["min_ref_gap"],
            per_clip=d["windows_per_clip"],
            shuffle=d["shuffle"],
            seed=self.cfg["seed"] + self.seed_offset,
            resampled=True,
            basis_id=self.basis_id,
            exclude_identities=self.val_ids,
            max_sync_offset=d["max_sync_offset"],
        )
        return self._loader(ds, True)

    def val_dataloader(self) -> DataLoader:
        """Every rank reads all validation windows (a fixed grid): identical, so no rank waits on
        another with fewer batches, and the synced mean is the full-set mean."""
        d = self.cfg["data"]
        urls = self.val_urls + (self.train_urls if self.val_ids else [])
        ds = wds.DataPipeline(
            wds.SimpleShardList(urls),
            wds.tarfile_to_samples(handler=wds.warn_and_continue),
            wds.select(lambda s: _is_val(s, self.val_ids, bool(self.val_urls))),
            wds.map(
                ToMotionWindows(
                    d["window"],
                    d["mel_context"],
                    d["min_ref_gap"],
                    self.cfg["model"]["n_expression"],
                    None,
                    0,
                    self.basis_id,
                ),
                handler=wds.warn_and_continue,
            ),
            _unlist,
        )
        return self._loader(ds, False)


def _is_val(sample: dict, val_ids: set[str], from_val_shards: bool) -> bool:
    meta = json.loads(sample["json"])
    return meta["identity"] in val_ids or (from_val_shards and meta["split"] == "val")
