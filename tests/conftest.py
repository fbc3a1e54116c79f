"""Shared fixtures and the test tiers.

Tiers (markers, set here from the fixtures a test uses, so they cannot drift):
- `shared`: reads ../shared (real clips, images, weights); skipped with a reason where it is absent.
- `slow`: more than ~30 s on 2 cores (training runs, mediapipe over many clips).
`make test-fast` runs neither (synthetic shards, units, networks); `make test` runs everything.

`make test` runs two pytest-xdist workers (`--dist loadfile`): each test file goes to one worker
whole (its module fixtures are built once), and the files that name a costly session fixture
(SESSION_GROUPS) go to the same worker, so that fixture is built once too (`pytest_xdist_make_scheduler`
below; xdist's own `loadgroup` does not group under pytest 9: it rewrites a node id pytest no longer reads).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from vlogger.core.config import REPO_ROOT, load_config

SHARED = Path(os.environ.get("VLOGGER_SHARED", REPO_ROOT.parent / "shared"))
SHARED_FIXTURES = {"shared_dir", "clips_dir", "real_shards"}
SLOW_FIXTURES = {"real_shards", "bad_run", "tiny_models"}  # bad_run: mediapipe over thirteen broken and good files


SESSION_GROUPS = ("real_shards", "tiny_models")  # minutes each: one worker builds each


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & SHARED_FIXTURES:
            item.add_marker(pytest.mark.shared)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


if importlib.util.find_spec("xdist"):

    def pytest_xdist_make_scheduler(config: pytest.Config, log):
        """`--dist loadfile`, with the files that name a SESSION_GROUPS fixture as one scope."""
        if config.getvalue("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadFileScheduling

        @functools.cache
        def scope(path: str) -> str:
            text = (config.rootpath / path).read_text()
            return next((g for g in SESSION_GROUPS if g in text), path)

        class FilesAndSessionGroups(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return scope(nodeid.split("::")[0])

        return FilesAndSessionGroups(config, log)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (or $VLOGGER_SHARED): the real data beside the checkout."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set VLOGGER_SHARED to the shared/ folder)")
    return SHARED


@pytest.fixture(scope="session")
def clips_dir(shared_dir: Path) -> Path:
    """The nine real talking clips the tests rely on."""
    clips = shared_dir / "data" / "clips"
    if not clips.is_dir():
        pytest.skip(f"real clips not found at {clips}")
    return clips


@pytest.fixture(scope="session")
def hdtf_annotations(shared_dir: Path) -> Path:
    """HDTF's official annotation files, unchanged (../shared/data/recipes/hdtf)."""
    d = shared_dir / "data" / "recipes" / "hdtf"
    if not d.is_dir():
        pytest.skip(f"HDTF annotation files not found at {d}")
    return d


@pytest.fixture(scope="session")
def preprocess_cfg() -> dict:
    return load_config(None, "preprocess/default.yaml")


@pytest.fixture(scope="session")
def real_shards(tmp_path_factory, clips_dir: Path) -> tuple[Path, dict]:
    """All nine real clips preprocessed once (small shards so there are several)."""
    from vlogger.preprocessing.run import preprocess

    out = tmp_path_factory.mktemp("real_shards")
    cfg = load_config(None, "preprocess/default.yaml", ["shards.max_clips=3"])
    stats = preprocess(clips_dir, out, cfg, workers=2)
    return out, stats


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """Three synthetic 3 s clips at 64 px as preprocessing writes them (synth_002 in val),
    made in seconds without mediapipe or ../shared: what dataset, training and generation tests use."""
    from vlogger.preprocessing.synthetic import make_synthetic_shards

    out = tmp_path_factory.mktemp("synthetic_shards")
    make_synthetic_shards(out, clips=3, seconds=3.0, overrides=["crop.size=64"])
    return out


@pytest.fixture(scope="session")
def talking(tmp_path_factory):
    """Frames and 16 kHz audio of a 3 s synthetic talking clip (256 px), and its mp4 file."""
    from vlogger.core.audio import load_audio
    from vlogger.core.video import decode_mp4_bytes
    from vlogger.preprocessing.sample import make_sample

    d = tmp_path_factory.mktemp("talking")
    (path,) = make_sample(d, n_clips=1, seconds=3.0, size=256)
    return decode_mp4_bytes(path.read_bytes()), load_audio(path, 16000), path


@pytest.fixture(scope="session")
def short_clips(tmp_path_factory, clips_dir: Path) -> Path:
    """The first 60 frames (2.4 s) of three real clips with their audio, re-encoded: for tests that
    score several videos more than once, where whole clips would cost minutes."""
    from vlogger.core.audio import load_audio
    from vlogger.core.video import decode_mp4_bytes, encode_mp4, probe

    out, n = tmp_path_factory.mktemp("short_clips"), 60
    for name in ("retalking_face5", "liveportrait_d20", "retalking_face2"):
        path = clips_dir / f"{name}.mp4"
        fps = round(probe(path).source_fps)
        frames, audio = decode_mp4_bytes(path.read_bytes())[:n], load_audio(path, 16000)[: n * 16000 // fps]
        (out / f"{name}.mp4").write_bytes(encode_mp4(frames, fps, audio=audio))
    return out


@pytest.fixture
def link_inputs() -> Callable[[Path, Path, list[str]], Path]:
    """A folder of inputs that are all links to one video (distinct names = identities)."""

    def link(folder: Path, target: Path, names: list[str]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / name).symlink_to(target)
        return folder

    return link


@pytest.fixture(scope="session")
def tiny_models(synthetic_shards, tmp_path_factory) -> dict:
    """A 5-step stage-1 and a 3-step stage-2 model (32 px) on the synthetic shards (about 15 s)."""
    from vlogger.training.run import train_motion, train_video

    runs = tmp_path_factory.mktemp("bench_runs")
    common = [
        f"data.shards={synthetic_shards}",
        "data.val_identities=[synth_001]",
        "trainer.limit_val_batches=1",
        f"logging.dir={runs}",
        "logging.logger=csv",
        "logging.media_every_steps=0",
    ]
    steps = ["trainer.max_steps={n}", "trainer.val_every_steps={n}"]
    motion = load_config(
        None,
        "train/motion.yaml",
        [*common, *(s.format(n=5) for s in steps), "model.width=32", "model.depth=2", "model.heads=2"],
    )
    video = load_config(
        None,
        "train/video.yaml",
        [
            *common,
            *(s.format(n=3) for s in steps),
            "phase=clip",
            "data.size=32",
            "data.frames=4",
            "data.batch_size=2",
            "guidance.overlap=2",
            "model.channels=[16,32,64]",
            "sampling.steps=2",
        ],
    )
    return {"motion": train_motion(motion)["last_checkpoint"], "video": train_video(video)["last_checkpoint"]}
