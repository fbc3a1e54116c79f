"""Every kind of bad input is rejected with the file and the reason, and the run goes on.

The folder is built from the synthetic talking astronaut (no ../shared needed); the real
1080p / 30 fps / variable-frame-rate clips are covered in test_preprocess_real.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vlogger.core.config import load_config
from vlogger.core.video import encode_mp4
from vlogger.preprocessing.run import preprocess

SR = 16000


def _write(path: Path, frames: np.ndarray | None, audio: np.ndarray | None, fps: int = 25) -> Path:
    if frames is None:  # audio only
        with av.open(str(path), "w") as out:
            stream = out.add_stream("aac", rate=SR, layout="mono")
            frame = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = SR, 0
            for p in [*stream.encode(frame), *stream.encode()]:
                out.mux(p)
        return path
    path.write_bytes(encode_mp4(frames, fps, audio=audio))
    return path


def _write_vfr(path: Path, frames: np.ndarray, audio: np.ndarray) -> tuple[Path, float]:
    """Frames shown for alternately 20 ms and 60 ms (mean 25 fps, but no constant rate)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        aus = out.add_stream("aac", rate=SR, layout="mono")
        t = 0
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, "rgb24")
            f.pts, f.time_base = t, Fraction(1, 1000)
            t += 20 if i % 2 == 0 else 60
            for p in vs.encode(f):
                out.mux(p)
        out.mux(vs.encode())
        af = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="flt", layout="mono")
        af.sample_rate, af.pts = SR, 0
        for p in [*aus.encode(af), *aus.encode()]:
            out.mux(p)
    return path, t / 1000


@pytest.fixture(scope="module")
def bad_run(talking, tmp_path_factory):
    frames, audio, good = talking
    src = tmp_path_factory.mktemp("bad_inputs")
    n = len(frames)
    (src / "good.mp4").write_bytes(good.read_bytes())
    (src / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (src / "garbage.mov").write_bytes(np.random.default_rng(0).bytes(5000))  # fixed: random bytes can probe as a stream
    _write(src / "no_audio.mp4", frames, None)
    _write(src / "audio_only.mp4", None, audio)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (n, 256, 256, 3), dtype=np.uint8)
    _write(src / "no_face.mp4", noise, audio)
    _write(src / "two_people.mp4", np.concatenate([frames, frames[:, :, ::-1]], axis=2), audio)
    _write(src / "silent.mp4", frames, np.zeros_like(audio))
    _write(src / "one_frame.mp4", frames[:1], audio[: SR // 25])
    idx30 = np.minimum((np.arange(n * 30 // 25) * 25) // 30, n - 1)
    _write(src / "fps30.mp4", frames[idx30], audio, fps=30)
    _, vfr_seconds = _write_vfr(src / "vfr.mkv", frames, audio)
    (src / "broken_link.mp4").symlink_to(src / "does_not_exist.mp4")
    (src / "a_folder.webm").mkdir()
    (src / "notes.txt").write_text("not a video")
    out = tmp_path_factory.mktemp("bad_out")
    cfg = load_config(None, "preprocess/default.yaml")
    stats = preprocess(src, out, cfg, workers=2)
    rejected = {}
    for line in (out / "rejected.jsonl").read_text().splitlines():
        r = json.loads(line)
        rejected.setdefault(r["file"], []).append(r["reason"])
    index = json.loads((out / "index.json").read_text())
    return stats, rejected, index, vfr_seconds


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated.mp4", "cannot"),
        ("garbage.mov", "cannot read container"),
        ("no_audio.mp4", "no audio track"),
        ("audio_only.mp4", "no video stream"),
        ("no_face.mp4", "no face"),
        ("two_people.mp4", "several faces"),
        ("silent.mp4", "silent"),
        ("one_frame.mp4", "too short: 1 frames"),
        ("broken_link.mp4", "unreadable path"),
        ("a_folder.webm", "unreadable path"),
    ],
)
def test_bad_input_rejected_with_reason(bad_run, name, reason):
    _, rejected, _, _ = bad_run
    assert name in rejected, f"{name} not rejected; rejected: {sorted(rejected)}"
    assert any(reason in r for r in rejected[name]), rejected[name]


def test_good_inputs_survive_the_bad_ones(bad_run, talking):
    stats, rejected, index, vfr_seconds = bad_run
    accepted = {c["key"]: c for c in index["clip_list"]}
    assert set(accepted) == {"good-000", "fps30-000", "vfr-000"}
    n = len(talking[0])
    assert accepted["good-000"]["frames"] == n
    assert accepted["fps30-000"]["frames"] == n  # 30 fps resampled to 25, same duration
    # the last frame's display time is the container's guess: allow one frame either way
    assert abs(accepted["vfr-000"]["frames"] - vfr_seconds * 25) <= 1
    assert "notes.txt" not in rejected  # not a video extension: not an input at all
    assert stats["inputs"] == 13


@pytest.mark.slow
def test_synthetic_sample_mouth_follows_its_drive(talking, tmp_path):
    """End to end on the embedded sample: tracked mouth opening follows the driving signal."""
    import io

    import webdataset as wds

    from vlogger.core import landmarks

    _, _, path = talking
    src = tmp_path / "in"
    src.mkdir()
    (src / path.name).symlink_to(path)
    preprocess(src, tmp_path / "out", load_config(None, "preprocess/default.yaml"))
    (sample,) = wds.WebDataset(sorted(map(str, (tmp_path / "out").glob("shard-*.tar"))), shardshuffle=False)
    mouth = landmarks.mouth_opening(np.load(io.BytesIO(sample["lmk.npy"])), "mediapipe478")
    drive = np.load(path.with_suffix(".drive.npy"))
    assert len(mouth) == len(drive)
    assert np.corrcoef(mouth, drive)[0, 1] > 0.5


@pytest.mark.slow
def test_killed_run_resumes_with_each_clip_once(talking, tmp_path):
    """SIGKILL the whole run after its first shard, rerun: nothing lost, nothing twice."""
    _, _, good = talking
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(5):
        (src / f"person{i}.mp4").symlink_to(good)
    cmd = [sys.executable, "-m", "vlogger.cli", "preprocess", "--input", str(src), "--out", str(out)]
    cmd += ["--set", "shards.max_clips=1", "--set", "shards.val_fraction=0"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(out.glob("shard-*.tar")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted(out.glob("shard-*.tar"))
    assert first, "the run wrote no shard before it was killed"
    assert len(first) < 5, "the run finished before it could be killed; test is void"
    kept = {p.name: p.stat().st_mtime_ns for p in first}
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import webdataset as wds

    shards = sorted(map(str, out.glob("shard-*.tar")))
    keys = [s["__key__"] for s in wds.WebDataset(shards, shardshuffle=False)]
    assert sorted(keys) == [f"person{i}-000" for i in range(5)]
    assert not list(out.glob("*.tmp"))
    assert all(Path(out / n).stat().st_mtime_ns == t for n, t in kept.items())
    index = json.loads((out / "index.json").read_text())
    assert index["clips"] == 5


@pytest.mark.parametrize(
    ("text", "reason"),
    [(None, "no such file"), ("{not json", "not JSON"), ('{"videos": 3}', "no scored, aggregate")],
)
def test_leaderboard_add_names_a_result_file_it_cannot_use(tmp_path, capsys, text, reason):
    from vlogger.cli import main

    result = tmp_path / "results.json"
    if text is not None:
        result.write_text(text)
    board = tmp_path / "board.json"
    assert main(["leaderboard", "add", str(result), "--name", "m", "--leaderboard", str(board)]) == 2
    assert f"{result}: {reason}" in capsys.readouterr().err and not board.exists()
