"""Identity of a clip and its train/val split (by identity, never by clip)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vlogger.core.errors import UsageError


def identity_of(rel: str, mode: str) -> str:
    """Who is in the video: the file stem, or the folder it sits in (one folder per person)."""
    p = Path(rel)
    if mode == "stem":
        return p.stem
    if mode == "parent":
        return p.parent.name or p.stem
    raise UsageError(f"shards.identity_from must be stem or parent, not {mode!r}")


def split_of(identity: str, val_fraction: float) -> str:
    """'val' for a stable hash-chosen fraction of identities, else 'train'."""
    h = int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_fraction else "train"
