"""What the zoo knows about each weights file: the packaged registry plus the user's local additions."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import yaml

PACKAGED_REGISTRY = Path(__file__).with_name("registry.yaml")
_REQUIRED = ("url", "licence", "purpose", "format")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"\w[\w.-]*")  # also a cache folder name: no separators, no leading dot


class ZooError(Exception):
    """Anything the zoo refuses (unknown name, failed download, wrong checksum); the message says what to do."""


class MissingWeights(ZooError):
    """Weights a caller needs are not in the cache; the message names the command that puts them there."""


@dataclass(frozen=True)
class ZooEntry:
    """One weights file: where it officially comes from, how to check it, and under which terms it may be used."""

    name: str
    url: str
    licence: str
    purpose: str
    format: str
    file: str
    sha256: str | None = None
    size: int | None = None
    member: str | None = None


def cache_dir() -> Path:
    """`$VLOGGER_HOME/zoo`, else `~/.cache/vlogger/zoo`: one place that clusters can point at shared storage."""
    return Path(os.environ.get("VLOGGER_HOME") or Path.home() / ".cache" / "vlogger") / "zoo"


def local_registry_path() -> Path:
    """The user's own entries (written by `vlogger zoo add-local`), kept beside the cache they describe."""
    return cache_dir() / "registry.local.yaml"


def load_registry(path: str | Path | None = None) -> dict[str, ZooEntry]:
    """The registry at `path` (default `$VLOGGER_ZOO_REGISTRY`, else the packaged one), local entries merged over it.

    A local entry overrides the fields it gives, so a user can e.g. point a packaged name at a mirror.
    """
    path = Path(path or os.environ.get("VLOGGER_ZOO_REGISTRY") or PACKAGED_REGISTRY)
    local = local_registry_path()
    raw = _read_yaml(path)
    for name, fields in _read_yaml(local, missing_ok=True).items():
        raw[name] = {**raw.get(name, {}), **fields}
    return {name: _entry(name, fields, f"{path} + {local}") for name, fields in raw.items()}


def write_local_entry(name: str, fields: dict) -> ZooEntry:
    """Check and record a user's entry in the local registry, so later look-ups (and other processes) know it."""
    path = local_registry_path()
    entry = _entry(name, fields, str(path))
    raw = _read_yaml(path, missing_ok=True)
    raw[name] = fields
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=True))
    tmp.replace(path)
    return entry


def _read_yaml(path: Path, missing_ok: bool = False) -> dict:
    if not path.is_file():
        if missing_ok:
            return {}
        raise ZooError(f"zoo registry {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ZooError(f"zoo registry {path}: expected a mapping name -> entry")
    return data


def _entry(name: str, fields: dict, source: str) -> ZooEntry:
    if not _NAME.fullmatch(str(name)):
        raise ZooError(f"zoo registry {source}: bad entry name {name!r} (letters, digits, _ . - only)")
    missing = [k for k in _REQUIRED if not (isinstance(fields, dict) and fields.get(k))]
    if missing:
        raise ZooError(f"zoo registry {source}: entry {name!r} lacks {', '.join(missing)}")
    sha = fields.get("sha256")
    if sha is not None and not _SHA256.fullmatch(str(sha)):
        raise ZooError(f"zoo registry {source}: entry {name!r} has a malformed sha256 {sha!r}")
    file = fields.get("file") or fields.get("member") or PurePosixPath(urlparse(fields["url"]).path).name
    return ZooEntry(
        name=name,
        url=fields["url"],
        licence=fields["licence"],
        purpose=fields["purpose"],
        format=fields["format"],
        file=file,
        sha256=sha,
        size=fields.get("size"),
        member=fields.get("member"),
    )
