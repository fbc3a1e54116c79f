"""Shared fixtures: the real data beside the checkout, and one preprocessing run over it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlogger.core.config import REPO_ROOT, load_config

SHARED = Path(os.environ.get("VLOGGER_SHARED", REPO_ROOT.parent / "shared"))
CLIPS = SHARED / "data" / "clips"


def need_shared() -> Path:
    if not CLIPS.is_dir():
        pytest.skip(f"real clips not found at {CLIPS} (set VLOGGER_SHARED to the shared/ folder)")
    return CLIPS


@pytest.fixture(scope="session")
def preprocess_cfg() -> dict:
    return load_config(None, "preprocess/default.yaml")


@pytest.fixture(scope="session")
def real_shards(tmp_path_factory) -> tuple[Path, dict]:
    """All nine real clips preprocessed once (small shards so there are several)."""
    from vlogger.preprocessing.run import preprocess

    clips = need_shared()
    out = tmp_path_factory.mktemp("real_shards")
    cfg = load_config(None, "preprocess/default.yaml", ["shards.max_clips=3"])
    stats = preprocess(clips, out, cfg, workers=2)
    return out, stats


@pytest.fixture(scope="session")
def talking(tmp_path_factory):
    """Frames and 16 kHz audio of a 3 s synthetic talking clip (256 px), and its mp4 file."""
    from vlogger.core.audio import load_audio
    from vlogger.core.video import decode_mp4_bytes
    from vlogger.datasets.synthetic import make_sample

    d = tmp_path_factory.mktemp("talking")
    (path,) = make_sample(d, n_clips=1, seconds=3.0, size=256)
    return decode_mp4_bytes(path.read_bytes()), load_audio(path, 16000), path


def link_inputs(folder: Path, target: Path, names: list[str]) -> Path:
    """A folder of inputs that are all links to one video (distinct names = identities)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(target)
    return folder
