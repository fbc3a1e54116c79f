"""Identity of a clip and its split (by identity, never by clip).

Most datasets name a person by the file or its folder (`shards.identity_from`). Where one
person appears under several names (a corpus gathered from many repositories, a dataset
whose clips are `Name_k.mp4`), an identities file maps videos to people; files it leaves out
keep the name rule. Identities listed in `shards.test_identities` go to the `test` split,
which training never reads (a benchmark's held-out people).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from vlogger.core.config import read_yaml
from vlogger.core.errors import BadInput, UsageError


@functools.lru_cache(maxsize=4)
def read_identities(path: str) -> dict[str, str]:
    """An identities file: a YAML/JSON mapping of video (relative path, file name or stem) -> person."""
    p = Path(path)
    table = read_yaml(p, "identities file")
    if not isinstance(table, dict) or not all(isinstance(v, str) and v for v in table.values()):
        raise BadInput(p, "expected a mapping of video -> identity (non-empty strings)")
    return {str(k): v for k, v in table.items()}


def identity_of(rel: str, mode: str, identities: str | None = None) -> str:
    """Who is in the video: the identities file's entry (by relative path, file name, then stem),
    else the file stem or the folder it sits in (one folder per person)."""
    p = Path(rel)
    if identities:
        table = read_identities(identities)
        for key in (p.as_posix(), p.name, p.stem):
            if key in table:
                return table[key]
    if mode == "stem":
        return p.stem
    if mode == "parent":
        return p.parent.name or p.stem
    raise UsageError(f"shards.identity_from must be stem or parent, not {mode!r}")


def split_of(identity: str, val_fraction: float, test_identities: tuple[str, ...] | list[str] = ()) -> str:
    """'test' for the held-out identities, 'val' for a stable hash-chosen fraction of the rest, else 'train'."""
    if identity in test_identities:
        return "test"
    h = int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"
