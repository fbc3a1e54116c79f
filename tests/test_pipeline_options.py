"""Options a user sets: crop size, several jobs merged, backend selection."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import webdataset as wds

from vlogger.core.config import load_config
from vlogger.core.video import decode_frames
from vlogger.preprocessing.run import preprocess


def test_crop_512(talking, tmp_path, link_inputs):
    _, _, path = talking
    src = link_inputs(tmp_path / "in", path, ["a.mp4"])
    cfg = load_config(None, "preprocess/default.yaml", ["crop.size=512"])
    preprocess(src, tmp_path / "out", cfg)
    (sample,) = wds.WebDataset(sorted(map(str, (tmp_path / "out").glob("shard-*.tar"))), shardshuffle=False)
    assert decode_frames(sample["mp4"], [0]).shape == (1, 512, 512, 3)
    lmk = np.load(io.BytesIO(sample["lmk.npy"]))
    assert lmk[..., :2].min() > 0 and lmk[..., :2].max() < 512 and lmk[..., 1].max() > 256
    assert json.loads(sample["json"])["size"] == 512


@pytest.mark.slow
def test_jobs_split_the_inputs_and_merge(talking, tmp_path, link_inputs):
    """Two jobs (as a SLURM array would run them) then `vlogger merge-index`."""
    _, _, path = talking
    names = ["p0.mp4", "p1.mp4", "p2.mp4"]
    src = link_inputs(tmp_path / "in", path, names)
    out = tmp_path / "out"
    for job in range(2):
        cmd = [sys.executable, "-m", "vlogger.cli", "preprocess", "--input", str(src), "--out", str(out)]
        cmd += ["--num-shards", "2", "--shard-index", str(job), "--set", "shards.val_fraction=0"]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert "merge-index" in res.stdout  # a job part says what to run next
        assert not (out / "index.json").exists()
    jobs = {p.name.split("-")[2] for p in out.glob("shard-*.tar")}
    assert jobs == {"000", "001"}
    subprocess.run([sys.executable, "-m", "vlogger.cli", "merge-index", str(out)], check=True, capture_output=True)
    index = json.loads((out / "index.json").read_text())
    assert sorted(c["key"] for c in index["clip_list"]) == ["p0-000", "p1-000", "p2-000"]
    assert index["identities"] == 3 and index["inputs"] == 3


def test_face_alignment_backend_without_package_says_what_to_install(tmp_path, talking, link_inputs):
    pytest.importorskip("mediapipe")
    try:
        import face_alignment  # noqa: F401

        pytest.skip("face-alignment is installed here")
    except ImportError:
        pass
    _, _, path = talking
    src = link_inputs(tmp_path / "in", path, ["a.mp4"])
    cmd = [sys.executable, "-m", "vlogger.cli", "preprocess", "--input", str(src), "--out", str(tmp_path / "o")]
    res = subprocess.run([*cmd, "--set", "tracking.backend=face_alignment"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "pip install face-alignment" in res.stderr


def test_shot_cut_splits_one_video_into_two_clips(talking, tmp_path):
    """The same talking clip twice, the second time with colours swapped: two shots."""
    from vlogger.core.video import encode_mp4

    frames, audio, _ = talking
    src = tmp_path / "in"
    src.mkdir()
    both = np.concatenate([frames, frames[..., ::-1]])
    (src / "two_shots.mp4").write_bytes(encode_mp4(both, 25, audio=np.concatenate([audio, audio])))
    preprocess(src, tmp_path / "out", load_config(None, "preprocess/default.yaml"))
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [c["frames"] for c in index["clip_list"]] == [len(frames), len(frames)]


def test_truncated_shard_is_read_up_to_the_damage(talking, tmp_path, link_inputs):
    import warnings

    from vlogger.datasets.motion import ToMotionWindows
    from vlogger.datasets.windows import window_stream

    _, _, path = talking
    src = link_inputs(tmp_path / "in", path, ["a.mp4", "b.mp4", "c.mp4"])
    cfg = load_config(None, "preprocess/default.yaml", ["shards.val_fraction=0"])
    preprocess(src, tmp_path / "out", cfg)
    (shard,) = (tmp_path / "out").glob("shard-train-*.tar")
    data = shard.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keys = list(dict.fromkeys(w["key"] for w in window_stream([str(cut)], ToMotionWindows(25, 2, 25, 16, None, 0))))
    assert keys == ["a-000", "b-000"]
