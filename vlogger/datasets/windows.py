"""Training windows streamed from shards, for both stages: the stream, the identity split and the
LightningDataModule around them. A stage supplies the mapper that turns one raw clip sample
into a list of windows (`ShardWindows.windows`)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import lightning as L
import webdataset as wds
from torch.utils.data import DataLoader
from webdataset.utils import pytorch_worker_seed

from vlogger.body.params import from_npz
from vlogger.core.errors import ContractError, UsageError
from vlogger.core.spec import DataSpec
from vlogger.datasets.shards import clip_arrays, shard_urls

Mapper = Callable[[dict], list[dict]]
log = logging.getLogger(__name__)


class SkipCorrupt:
    """webdataset handler: a broken data contract (`ContractError`) stops the run; any other
    error is a damaged sample (a truncated tar, an undecodable member), counted, logged and
    skipped, so one bad clip does not end a week of training."""

    def __init__(self) -> None:
        self.skipped = 0

    def __call__(self, exn: Exception) -> bool:
        if isinstance(exn, ContractError):
            raise exn
        self.skipped += 1
        log.warning("skipped a damaged sample (%d in this process): %s: %s", self.skipped, type(exn).__name__, exn)
        return True


skip_corrupt = SkipCorrupt()


def shards_spec(roots: Sequence[Path]) -> DataSpec:
    """The data spec shared by every shard folder (a ContractError naming both when two differ)."""
    specs = [DataSpec.of_shards(r) for r in roots]
    for root, spec in zip(roots[1:], specs[1:], strict=True):
        specs[0].require_same(spec, str(roots[0] / "index.json"), str(root / "index.json"))
    return specs[0]


def pick_window(n_frames: int, window: int, min_ref_gap: int, rng: random.Random) -> tuple[int, int]:
    """(start, reference index): a random window and a reference at least min_ref_gap frames
    outside it when the clip allows, else the frame farthest from the window."""
    start = rng.randint(0, n_frames - window)
    far = [i for i in range(n_frames) if i < start - min_ref_gap or i >= start + window + min_ref_gap]
    if far:
        return start, rng.choice(far)
    return start, 0 if start >= n_frames - start - window else n_frames - 1


class ClipWindows:
    """Base of a stage's clip -> windows mapper: where windows start and which frame is their
    reference (far from the window, as VLOGGER samples it)."""

    def __init__(self, window: int, min_ref_gap: int, per_clip: int | None, seed: int):
        self.window, self.min_ref_gap, self.per_clip, self.seed = window, min_ref_gap, per_clip, seed
        self.holdout_tail_s: float | dict[str, float] | None = None
        self._rng: random.Random | None = None

    def hold_out(self, tail_s: float | dict[str, float] | None) -> ClipWindows:
        """Keep the last `tail_s` seconds of every clip (or of the named identities' clips) out of
        the windows and references: a held-out part of a training identity to score
        reconstruction on (`vlogger generate --motion-from`)."""
        self.holdout_tail_s = tail_s
        return self

    def usable_frames(self, meta: dict) -> int:
        """Frames of the clip windows may use, after the held-out tail."""
        tail = self.holdout_tail_s
        if isinstance(tail, dict):
            tail = tail.get(meta["identity"])
        return meta["n_frames"] - round((tail or 0.0) * meta["fps"])

    @property
    def rng(self) -> random.Random:
        """Seeded per rank and loader worker on first use, so every process draws other windows."""
        if self._rng is None:
            self._rng = random.Random(self.seed * 100003 + pytorch_worker_seed())
        return self._rng

    @staticmethod
    def read(sample: dict) -> tuple[dict, dict]:
        """A raw clip sample's json and its fitted parameters (which both stages train on)."""
        if "params.npz" not in sample:  # the spec says the shards have a fit: a damaged sample
            raise ValueError(f"{sample['__url__']}: clip {sample['__key__']} has no params.npz member")
        return json.loads(sample["json"]), from_npz(sample["params.npz"])

    def starts(self, meta: dict) -> list[tuple[int, int]]:
        """(start, reference) pairs: random ones, or every window-th frame with the farthest reference."""
        n_frames = self.usable_frames(meta)
        if n_frames < self.window:
            return []
        if self.per_clip is not None:
            return [pick_window(n_frames, self.window, self.min_ref_gap, self.rng) for _ in range(self.per_clip)]
        grid = range(0, n_frames - self.window + 1, self.window)
        return [(s, 0 if s >= n_frames - s - self.window else n_frames - 1) for s in grid]


def _unlist(src: Iterator[list[dict]]) -> Iterator[dict]:
    for windows in src:
        yield from windows


def trains_on(meta: dict, exclude: set[str], max_sync_offset: int | None) -> bool:
    """Whether training uses a clip (by its json): not a held-out identity, lips and sound in step."""
    in_sync = max_sync_offset is None or abs(meta["quality"]["sync_offset"]) <= max_sync_offset
    return meta["identity"] not in exclude and in_sync


def _is_val(sample: dict, val_ids: set[str], from_val_shards: bool) -> bool:
    meta = json.loads(sample["json"])
    return meta["identity"] in val_ids or (from_val_shards and meta["split"] == "val")


def window_stream(
    urls: Sequence[str],
    mapper: Mapper,
    shuffle: int = 0,
    seed: int = 0,
    resampled: bool = False,
    exclude_identities: set[str] | None = None,
    max_sync_offset: int | None = None,
) -> wds.DataPipeline:
    """Windows streamed from shards. `resampled` draws shards with replacement, seeded per rank
    and worker (an endless training stream, different on every DDP rank); otherwise shards are
    split across ranks and workers and read once. `exclude_identities` keeps the validation
    identities out; `max_sync_offset` drops clips whose lips and sound are out of step by more
    frames than that (preprocessing's sync score), which would teach the wrong timing."""
    if resampled:
        source = [wds.ResampledShards(list(urls), seed=seed, deterministic=True)]
    else:
        source = [wds.SimpleShardList(list(urls)), wds.split_by_node, wds.split_by_worker]
    stages = [*source, wds.tarfile_to_samples(handler=skip_corrupt)]
    if exclude_identities or max_sync_offset is not None:
        keep = exclude_identities or set()
        stages.append(wds.select(lambda s: trains_on(json.loads(s["json"]), keep, max_sync_offset)))
    stages += [wds.map(mapper, handler=skip_corrupt), _unlist]
    if shuffle:
        stages.append(wds.shuffle(shuffle, seed=seed))
    return wds.DataPipeline(*stages)


class ShardWindows(L.LightningDataModule):
    """Train/val windows. Validation = the shards' val split plus any identities named in
    `data.val_identities` (taken out of training), so a split by identity exists even when
    preprocessing hashed every identity into train. The training stream is endless and drawn
    per rank; `seed_offset` (the resumed step) moves it on after a restart."""

    def __init__(self, cfg: dict, seed_offset: int = 0):
        super().__init__()
        self.cfg, self.seed_offset = cfg, seed_offset
        d = cfg["data"]
        roots = [Path(r) for r in ([d["shards"]] if isinstance(d["shards"], str) else d["shards"])]
        self.train_urls = [u for root in roots for u in shard_urls(root, "train")]
        self.val_urls = sorted(str(p) for root in roots for p in root.glob("shard-val-*.tar"))
        self.val_ids = set(d["val_identities"] or [])
        self.spec = shards_spec(roots)
        if self.spec.body_model is None:
            raise ContractError(f"{d['shards']}: preprocessed without a 3D fit (fit.body_model: null)")
        if not self.val_urls and not self.val_ids:
            raise UsageError(f"{d['shards']}: no val shards; name held-out identities in data.val_identities")

    def windows(self, per_clip: int | None, seed: int) -> Mapper:
        """The stage's clip -> windows mapper: `per_clip` random windows, or (None) a fixed grid."""
        raise NotImplementedError

    def check_val_identities(self) -> None:
        """Named validation identities must exist in the shards (a typo would validate on nothing)."""
        if not self.val_ids:
            return
        seen = {c["json"]["identity"] for c in clip_arrays(self.train_urls + self.val_urls, [])}
        missing = self.val_ids - seen
        if missing:
            raise UsageError(f"data.val_identities {sorted(missing)} are not in {self.cfg['data']['shards']}")

    def _loader(self, ds, workers: int) -> DataLoader:
        bs = self.cfg["data"]["batch_size"]
        return DataLoader(ds, batch_size=bs, num_workers=workers, persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        d = self.cfg["data"]
        seed = self.cfg["seed"] + self.seed_offset
        ds = window_stream(
            self.train_urls,
            self.windows(d["windows_per_clip"], seed).hold_out(d.get("holdout_tail_s")),
            shuffle=d["shuffle"],
            seed=seed,
            resampled=True,
            exclude_identities=self.val_ids,
            max_sync_offset=d.get("max_sync_offset"),
        )
        return self._loader(ds, d["num_workers"])

    def val_dataloader(self) -> DataLoader:
        """Every rank reads all validation windows (a fixed grid): identical, so no rank waits on
        another with fewer batches, and the synced mean is the full-set mean."""
        urls = self.val_urls + (self.train_urls if self.val_ids else [])
        ds = wds.DataPipeline(
            wds.SimpleShardList(urls),
            wds.tarfile_to_samples(handler=skip_corrupt),
            wds.select(lambda s: _is_val(s, self.val_ids, bool(self.val_urls))),
            wds.map(self.windows(None, 0), handler=skip_corrupt),
            _unlist,
        )
        return self._loader(ds, 0)
