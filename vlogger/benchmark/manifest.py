"""Benchmark manifests: versioned YAML lists of items (a ground-truth segment, a reference, the
driving audio), every path relative to a data root so a manifest travels between machines.

    name: corpus-val
    version: 1                 # bump when items change
    protocol: "2.0"            # configs/eval/protocol.yaml `version` the numbers are made under
    data_root: ../shared/data  # default root; --data-root overrides
    size: 256                  # optional: side of the square crops scored (default 256)
    items:
      - {id: x, identity: x, video: corpus/x.mp4, start: 1.0, end: null,
         reference: {frame: 0.0}, audio: own}
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from vlogger.core.config import read_yaml
from vlogger.core.errors import BadInput, UsageError
from vlogger.core.video import probe
from vlogger.preprocessing.splits import identity_of

DEFAULT_SIZE = 256
_ID = re.compile(r"[A-Za-z0-9][\w.-]*")
_TOP = {"name", "version", "protocol", "data_root", "description", "selection", "size", "items"}
_ITEM = {"id", "identity", "video", "start", "end", "reference", "audio"}


@dataclass(frozen=True)
class Item:
    """One generated and scored segment: [start, end) seconds of `video` (end None = its end)."""

    id: str
    identity: str
    video: str
    start: float
    end: float | None
    reference: dict  # {frame: seconds} outside [start, end), or {image: path}
    audio: str = "own"  # the clip's own track over the segment, or a file


@dataclass
class Manifest:
    name: str
    version: int
    protocol: str
    data_root: str
    items: list[Item]
    description: str = ""
    selection: str = ""
    size: int = DEFAULT_SIZE
    path: Path | None = field(default=None, compare=False)

    def root(self, override: str | Path | None = None) -> Path:
        """The data root: `override`, else the manifest's own, relative to the current folder."""
        return Path(override if override is not None else self.data_root)

    def identities(self) -> list[str]:
        """The people the benchmark holds out, sorted (for `shards.test_identities`)."""
        return sorted({i.identity for i in self.items})

    def to_yaml(self) -> str:
        d = {k: v for k, v in asdict(self).items() if k not in ("path", "items")}
        d["items"] = [asdict(i) for i in self.items]
        return yaml.safe_dump(d, sort_keys=False, allow_unicode=True, width=110)


def _check_item(raw: object, where: str, path: Path) -> Item:
    if not isinstance(raw, dict) or set(raw) - _ITEM or {"id", "video", "start"} - set(raw):
        raise BadInput(path, f"{where}: an item has the keys {sorted(_ITEM)} (id, video, start required), got {raw}")
    item = Item(
        id=str(raw["id"]),
        identity=str(raw.get("identity") or raw["id"]),
        video=str(raw["video"]),
        start=float(raw["start"]),
        end=None if raw.get("end") is None else float(raw["end"]),
        reference=dict(raw.get("reference") or {"frame": 0.0}),
        audio=str(raw.get("audio") or "own"),
    )
    if not _ID.fullmatch(item.id):
        raise BadInput(path, f"{where}: id {item.id!r} must be a file-name-safe word (letters, digits, _ . -)")
    paths = [item.video, *([item.audio] if item.audio != "own" else []), *[str(item.reference.get("image", ""))]]
    if any(Path(p).is_absolute() for p in paths if p):
        raise BadInput(path, f"{where}: paths are relative to the data root, not absolute")
    if item.end is not None and item.end <= item.start:
        raise BadInput(path, f"{where}: end {item.end} s is not after start {item.start} s")
    ref = item.reference
    if set(ref) == {"frame"}:
        t = float(ref["frame"])
        if item.start <= t and (item.end is None or t < item.end):
            raise BadInput(path, f"{where}: the reference frame at {t} s lies inside the segment [{item.start}, end)")
    elif set(ref) != {"image"}:
        raise BadInput(path, f"{where}: reference is {{frame: seconds}} or {{image: path}}, got {ref}")
    return item


def load_manifest(path: str | Path) -> Manifest:
    """A manifest checked against the schema; BadInput names the file and what is wrong."""
    path = Path(path)
    raw = read_yaml(path, "benchmark manifest")
    if not isinstance(raw, dict) or {"name", "version", "protocol", "items"} - set(raw):
        raise BadInput(path, "a manifest needs name, version, protocol and items")
    if set(raw) - _TOP:
        raise BadInput(path, f"unknown manifest keys {sorted(set(raw) - _TOP)}")
    if not isinstance(raw["items"], list) or not raw["items"]:
        raise BadInput(path, "items must be a non-empty list")
    items = [_check_item(r, f"item {k}", path) for k, r in enumerate(raw["items"])]
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise BadInput(path, f"duplicate item ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return Manifest(
        name=str(raw["name"]),
        version=int(raw["version"]),
        protocol=str(raw["protocol"]),
        data_root=str(raw.get("data_root") or "../shared/data"),
        items=items,
        description=str(raw.get("description") or ""),
        selection=str(raw.get("selection") or ""),
        size=int(raw.get("size") or DEFAULT_SIZE),
        path=path,
    )


def resolve(root: Path, rel: str) -> Path:
    """An item path under the data root, or BadInput naming it."""
    p = root / rel
    if not p.is_file():
        raise BadInput(p, f"not found under the data root {root} (give --data-root)")
    return p


def check_protocol(manifest: Manifest, protocol: dict) -> None:
    """A run under another protocol version than the manifest's is refused: its numbers would not compare."""
    if str(protocol["version"]) != manifest.protocol:
        raise UsageError(
            f"{manifest.path}: protocol {manifest.protocol} in the manifest, {protocol['version']} in the "
            "evaluation protocol; make a new manifest version for the new protocol"
        )


def make_manifest(
    clips: Path,
    data_root: Path,
    name: str,
    protocol: str,
    seconds: float | None = None,
    start: float = 1.0,
    identities: str | None = None,
    people: list[str] | None = None,
    extensions: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".webm", ".mpg", ".avi"),
) -> tuple[Manifest, dict[str, str]]:
    """One item per clip in `clips` (sorted by name: deterministic): reference = its first frame,
    segment = [start, start + seconds) or to its end; `people`: only these identities' clips (all
    of each). Returns the manifest and the clips refused (file -> reason), e.g. too short."""
    files = sorted(p for p in clips.iterdir() if p.suffix.lower() in extensions)
    if people is not None:
        unknown = set(people) - {identity_of(f.name, "stem", identities) for f in files}
        if unknown:
            raise UsageError(f"--people {sorted(unknown)}: nobody of that name in {clips} (see --identities)")
        files = [f for f in files if identity_of(f.name, "stem", identities) in people]
    if not files:
        raise BadInput(clips, f"no videos ({', '.join(extensions)}) in this folder")
    root = Path(os.path.abspath(data_root))  # normalised, links kept: a linked clips folder stays under its root
    items, refused = [], {}
    for f in files:
        duration = probe(f).duration
        need = start + (seconds if seconds is not None else 1.0)
        if duration < need:
            refused[f.name] = f"too short: {duration:.2f} s, the item needs {need:.2f} s"
            continue
        try:
            rel = Path(os.path.abspath(f)).relative_to(root).as_posix()
        except ValueError as e:
            raise UsageError(f"{f} is not under the data root {data_root} (give --data-root)") from e
        end = None if seconds is None else round(start + seconds, 3)
        items.append(Item(_safe_id(f.stem), identity_of(f.name, "stem", identities), rel, start, end, {"frame": 0.0}))
    if not items:
        raise UsageError(f"no clip in {clips} is long enough: " + "; ".join(f"{k}: {v}" for k, v in refused.items()))
    who = f"the clips of {', '.join(sorted(people))}" if people else "every clip"
    selection = f"{who} in {clips.name}/, reference its first frame, segment from {start} s" + (
        f" for {seconds} s" if seconds else " to its end"
    )
    return Manifest(name, 1, protocol, str(data_root), items, selection=selection), refused


def _safe_id(stem: str) -> str:
    return re.sub(r"[^\w.-]", "_", stem)
