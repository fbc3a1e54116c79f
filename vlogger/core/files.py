"""Atomic writes: a killed job never leaves a half-written file (a shard part, a manifest, a video, a
result); and one reader of the JSON files a user hands over, whose errors name the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from vlogger.core.errors import BadInput


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write to a temporary name beside `path`, then rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)
    return path


def write_json(path: Path, obj: object) -> Path:
    return write_atomic(path, json.dumps(obj, indent=1, default=float))


def read_json(path: Path) -> object:
    """A JSON file a user names (a result, a leaderboard): missing or unreadable is a BadInput."""
    if not path.is_file():
        raise BadInput(path, "no such file")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(path, f"not JSON: {e}") from e
