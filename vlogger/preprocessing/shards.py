"""Atomic, resumable WebDataset shard writing and the index that describes the shards.

Layout of an output folder:
  shard-SPLIT-JJJ-NNNNN.tar  finished shards of split SPLIT written by job JJJ (never rewritten)
  parts/manifest-JJJ.jsonl   one line per finished input of job JJJ: its clips or why not
  parts/spec-JJJ.json        the data contract job JJJ wrote under (vlogger.core.spec)
  index.json, rejected.jsonl the merge of every job's manifest

A shard is written as `.tar.tmp` and renamed when closed; an input is recorded as done
only once the shard holding its clips is renamed. An interrupted job therefore leaves no
half shard, and its rerun redoes exactly the inputs whose clips were not yet in a shard.
(webdataset's ShardWriter has no such commit step, so the rotation is done here over its
TarWriter.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import webdataset as wds

from vlogger.core.files import write_atomic
from vlogger.core.spec import DataSpec

INDEX_VERSION = 1


def manifest_path(out: Path, job: int) -> Path:
    return out / "parts" / f"manifest-{job:03d}.jsonl"


def record_spec(out: Path, job: int, spec: DataSpec) -> None:
    """Write the job's data spec, or check it against the one a previous run of the job wrote:
    a resumed job with other settings would mix two contracts in one folder."""
    path = out / "parts" / f"spec-{job:03d}.json"
    if path.exists():
        DataSpec.from_dict(json.loads(path.read_text()), str(path)).require_same(spec, str(path), "this run's settings")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(spec.to_dict(), indent=1))


def merged_spec(out: Path) -> DataSpec:
    """The one spec every job of the folder wrote under."""
    paths = sorted((out / "parts").glob("spec-*.json"))
    if not paths:
        raise FileNotFoundError(f"{out / 'parts'}: no spec-*.json (no preprocessing job has run here)")
    specs = [DataSpec.from_dict(json.loads(p.read_text()), str(p)) for p in paths]
    for p, spec in zip(paths[1:], specs[1:], strict=True):
        specs[0].require_same(spec, str(paths[0]), str(p))
    return specs[0]


def read_manifest(path: Path) -> list[dict]:
    """Entries of a manifest; a torn last line (killed mid-write) is ignored."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return entries


class Manifest:
    """Append-only record of one job's finished inputs (fsynced: it is the resume point)."""

    def __init__(self, out: Path, job: int):
        self.path = manifest_path(out, job)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done = {e["input"] for e in read_manifest(self.path)}

    def record(self, entries: list[dict]) -> None:
        with self.path.open("a") as f:
            for e in entries:
                f.write(json.dumps(e) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done.update(e["input"] for e in entries)


class ShardSink:
    """Writes samples into `shard-{prefix}-NNNNN.tar` files of bounded size, atomically."""

    def __init__(self, out: Path, prefix: str, max_bytes: int, max_clips: int, manifest: Manifest):
        self.out, self.prefix, self.max_bytes, self.max_clips = out, prefix, max_bytes, max_clips
        self.manifest = manifest
        for stale in out.glob(f"shard-{prefix}-*.tar.tmp"):
            stale.unlink()
        existing = sorted(out.glob(f"shard-{prefix}-*.tar"))
        self.seq = int(existing[-1].stem.rsplit("-", 1)[1]) + 1 if existing else 0
        self._writer: wds.TarWriter | None = None
        self._pending: list[dict] = []
        self._count = 0

    @property
    def _path(self) -> Path:
        return self.out / f"shard-{self.prefix}-{self.seq:05d}.tar"

    @property
    def _tmp(self) -> Path:
        return self._path.with_suffix(".tar.tmp")

    def add(self, entry: dict, samples: list[dict]) -> None:
        """Write an input's samples; its manifest entry is recorded when their shard commits."""
        if self._writer is None:
            self._writer = wds.TarWriter(str(self._tmp))
        for sample in samples:
            self._writer.write(sample)
        self._count += len(samples)
        for clip in entry["clips"]:
            clip["shard"] = self._path.name
        self._pending.append(entry)
        if self._tmp.stat().st_size >= self.max_bytes or self._count >= self.max_clips:
            self.commit()

    def commit(self) -> None:
        """Close the open shard, rename it into place, then record its inputs as done."""
        if self._writer is None:
            return
        self._writer.close()
        os.replace(self._tmp, self._path)
        self.manifest.record(self._pending)
        self._writer, self._pending, self._count = None, [], 0
        self.seq += 1


def manifest_entry(input_rel: str, samples: list[dict], rejected: list[dict]) -> dict:
    return {"input": input_rel, "rejected": rejected, "clips": [_clip_summary(s) for s in samples]}


def _clip_summary(sample: dict) -> dict:
    meta = sample["json"]
    return {
        "key": sample["__key__"],
        "frames": meta["n_frames"],
        "fps": meta["fps"],
        "identity": meta["identity"],
        "split": meta["split"],
    }


def merge_index(out: Path) -> dict:
    """Combine every job's manifest into index.json and rejected.jsonl (the SLURM-array merge)."""
    entries = [e for p in sorted((out / "parts").glob("manifest-*.jsonl")) for e in read_manifest(p)]
    clips = [c for e in entries for c in e["clips"]]
    shards: dict[str, int] = {}
    for c in clips:
        shards[c["shard"]] = shards.get(c["shard"], 0) + 1
    splits: dict[str, dict] = {}
    for c in clips:
        s = splits.setdefault(c["split"], {"clips": 0, "frames": 0, "identities": set(), "shards": set()})
        s["clips"] += 1
        s["frames"] += c["frames"]
        s["identities"].add(c["identity"])
        s["shards"].add(c["shard"])
    frames = sum(c["frames"] for c in clips)
    seconds = sum(c["frames"] / c["fps"] for c in clips)
    index = {
        "version": INDEX_VERSION,
        "spec": merged_spec(out).to_dict(),
        "inputs": len(entries),
        "inputs_with_clips": sum(1 for e in entries if e["clips"]),
        "clips": len(clips),
        "frames": frames,
        "hours": round(seconds / 3600, 4),
        "identities": len({c["identity"] for c in clips}),
        "splits": {
            k: {
                "clips": v["clips"],
                "frames": v["frames"],
                "identities": sorted(v["identities"]),
                "shards": sorted(v["shards"]),
            }
            for k, v in sorted(splits.items())
        },
        "shards": [{"name": k, "clips": v} for k, v in sorted(shards.items())],
        "clip_list": clips,
    }
    write_atomic(out / "index.json", json.dumps(index, indent=1))
    rejected = [r for e in entries for r in e["rejected"]]
    write_atomic(out / "rejected.jsonl", "".join(json.dumps(r) + "\n" for r in rejected))
    return index
