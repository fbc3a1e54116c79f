"""`vlogger evaluate` over a folder, and the leaderboard built from its results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vlogger.core.config import load_config
from vlogger.core.video import encode_mp4
from vlogger.evaluation import collection, leaderboard
from vlogger.evaluation.inception import FIDInceptionV3
from vlogger.evaluation.metric import EvalVideo, FrameReader, Measured, Needs, VideoMetric
from vlogger.evaluation.motion import Jitter
from vlogger.evaluation.runner import evaluate
from vlogger.evaluation.tracks import CHUNK, VideoSource
from vlogger.zoo import add_local


def test_evaluate_folder_report_and_leaderboard(tmp_path, clips_dir):
    clips = clips_dir
    gen, out = tmp_path / "generated", tmp_path / "eval"
    gen.mkdir()
    for name in ("retalking_face5", "liveportrait_d20"):
        (gen / f"{name}.mp4").symlink_to(clips / f"{name}.mp4")
    noise = np.random.default_rng(0).integers(0, 255, (40, 128, 128, 3), dtype=np.uint8)
    (gen / "no_face.mp4").write_bytes(encode_mp4(noise, 25, audio=np.zeros(40 * 640, np.float32)))
    (gen / "short.mp4").write_bytes(encode_mp4(noise[:5], 25))
    cmd = [sys.executable, "-m", "vlogger.cli", "evaluate", "--generated", str(gen), "--reference", str(clips)]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, text=True)
    res = json.loads((out / "results.json").read_text())
    assert res["protocol_version"] == "2.0" and res["lse_mode"] == "fast" and res["videos"] == 4 and res["scored"] == 2
    reasons = {u["video"]: u["reason"] for u in res["unscorable"]}
    assert "face tracked on only" in reasons["no_face.mp4"] and "too short" in reasons["short.mp4"]
    row = res["per_video"]["retalking_face5.mp4"]
    # the ground truth scored against itself
    assert row["lme"] == 0 and row["head_pose_error"] == 0 and row["psnr"] == 100 and row["ssim"] > 0.999
    assert row["av_confidence"] > 0.1 and abs(row["av_offset"]) <= 3
    assert "lse" in res["skipped_metrics"] and "vlogger zoo fetch syncnet_v2" in res["skipped_metrics"]["lse"]
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 8 and "no_face.mp4" in page
    # the report keeps a small strip per scored video (4 frames at 160 px, generated over reference), on disk
    strips = sorted((out / "frames").glob("*.png"))
    assert [p.stem for p in strips] == ["liveportrait_d20", "retalking_face5"]
    assert all(f"frames/{p.name}" in page for p in strips)
    assert all(cv2.imread(str(p)).shape[0] == 2 * 160 and p.stat().st_size < 1_000_000 for p in strips)

    # `vlogger leaderboard add`: the benchmark board, the evaluated folder as its benchmark
    board = tmp_path / "board.json"
    add = [sys.executable, "-m", "vlogger.cli", "leaderboard", "add", str(out / "results.json")]
    subprocess.run([*add, "--name", "ground-truth", "--leaderboard", str(board)], check=True)
    # a 1.0 result (identity backbone, no LSE mode) and a reference-mode LSE result: each its own table
    old = {k: v for k, v in res.items() if k != "lse_mode"} | {"protocol_version": "1.0", "identity_backbone": "dlib"}
    leaderboard.add(board, leaderboard.make_row(old, "old-protocol", "model", None))
    leaderboard.add(board, leaderboard.make_row(dict(res, lse_mode="reference"), "ground-truth", "model", None))
    (row, *_) = leaderboard.load(board)
    assert (row["benchmark"], row["items"], row["of"]) == ("folder", 2, 4)
    assert row["report"] == str(out / "report.html")
    md = leaderboard.markdown(leaderboard.load(board))
    assert "### folder — lse mode fast, protocol version 2.0" in md
    assert "### folder — lse mode reference, protocol version 2.0" in md
    assert "### folder — identity backbone dlib, protocol version 1.0" in md  # 1.0 stays readable, never mixed
    assert "no floor or ceiling" not in md  # a folder has no baselines to run
    assert md.count("| ground-truth | 2/4 |") == 2 and md.count("| old-protocol |") == 1
    html = leaderboard.write_html(leaderboard.load(board), tmp_path / "board.html").read_text()
    assert html.count("<table class='ranked'>") == 3 and "onclick" in html and "href='eval/report.html'" in html


def _stand_in_weights(tmp_path: Path, monkeypatch) -> None:
    """FID Inception and I3D in the official formats (random values), put in a fresh zoo with `zoo add-local`."""
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path / "home"))
    torch.manual_seed(0)
    torch.save(FIDInceptionV3().state_dict(), tmp_path / "pt_inception.pth")
    add_local("fid_inception_v3", tmp_path / "pt_inception.pth")

    class StandIn(torch.nn.Module):  # the I3D TorchScript's call signature, 400-d features
        def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool3d(x.float(), (4, 10, 10)).flatten(1)[:, :400]

    torch.jit.script(StandIn()).save(str(tmp_path / "i3d.pt"))
    add_local("i3d_torchscript", tmp_path / "i3d.pt")


@pytest.mark.slow
def test_two_workers_give_the_numbers_of_one(tmp_path, monkeypatch, short_clips):
    """Real clips (2.4 s of each), each scored against another (so LME is not zero and PSNR is skipped for its sizes),
    FID/FVD with stand-in weights (both folders hold the same three clips, so the sets match and FID is
    ~0): `workers=2` gives results.json of `workers=1`, to the last digit."""
    _stand_in_weights(tmp_path, monkeypatch)
    clips = short_clips
    names = ["retalking_face5", "liveportrait_d20", "retalking_face2"]
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for folder, order in ((gen, names), (ref, names[1:] + names[:1])):
        folder.mkdir()
        for name, clip in zip(names, order, strict=True):
            (folder / f"{name}.mp4").symlink_to(clips / f"{clip}.mp4")
    protocol = load_config(None, "eval/protocol.yaml", ["fid.frames_per_video=8"])  # all frames: minutes
    one, two = (evaluate(gen, ref, None, protocol, tmp_path / f"frames{n}", workers=n) for n in (1, 2))
    assert "fid" in one["aggregate"] and "fvd" in one["aggregate"], one["skipped_metrics"]
    assert (one["aggregate"]["fid_n_samples"], one["aggregate"]["fvd_n_samples"]) == (24, 3)
    assert len(one["warnings"]) == 2  # 24 frames and 3 clips are far below 2048
    assert abs(one["aggregate"]["fid"]) < 1e3 and one["aggregate"]["lme"] > 0
    assert "frame sizes differ" in one["per_video"]["retalking_face5.mp4"]["psnr_skipped"]
    assert json.dumps(one) == json.dumps(two)
    for a, b in zip(sorted((tmp_path / "frames1").iterdir()), sorted((tmp_path / "frames2").iterdir()), strict=True):
        assert a.read_bytes() == b.read_bytes()


class _FramesSeen(FrameReader):
    def __init__(self) -> None:
        self.starts: dict[str, list[int]] = {"gen": [], "ref": []}
        self.frames = {"gen": 0, "ref": 0}

    def add(self, start: int, gen: np.ndarray | None, ref: np.ndarray | None) -> None:
        for side, chunk in (("gen", gen), ("ref", ref)):
            if chunk is not None:
                assert start == self.frames[side]  # in order, each frame once
                self.starts[side].append(start)
                self.frames[side] += len(chunk)


class _FramesSeenMetric(VideoMetric):
    """A metric the runner knows nothing about: frames its reader saw, for videos with a reference."""

    name, higher_is_better, needs = "frames_seen", True, Needs(reference_video=True)

    def __init__(self, protocol: dict) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def reader(self, gen: VideoSource, ref: VideoSource | None) -> _FramesSeen:
        return _FramesSeen()

    def measure(self, video: EvalVideo, frames: _FramesSeen) -> Measured:
        assert (frames.frames["gen"], frames.frames["ref"]) == (video.gen.n_frames, video.ref.n_frames)
        return Measured(
            {"frames_seen": frames.frames["gen"], "chunks": len(frames.starts["gen"])}, frames.frames["gen"]
        )

    def update(self, measured: Measured) -> None:
        self.total += measured.value

    def compute(self) -> dict[str, float]:
        return {"frames_seen": int(self.total)}


def test_the_runner_loops_over_whatever_collection_it_is_given(tmp_path, monkeypatch, clips_dir, link_inputs):
    """The runner reaches every metric through the interface: a new metric with a frame reader just works, and
    is measured only for videos that have what it needs."""
    monkeypatch.setattr(collection, "METRICS", (Jitter, _FramesSeenMetric))
    clip = clips_dir / "retalking_face5.mp4"
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    link_inputs(gen, clip, ["a.mp4", "b.mp4"])
    link_inputs(ref, clip, ["a.mp4"])  # b has no reference: no frames_seen for it
    res = evaluate(gen, ref, None, load_config(None, "eval/protocol.yaml"))
    a, b = res["per_video"]["a.mp4"], res["per_video"]["b.mp4"]
    assert a["frames_seen"] == 122 and a["chunks"] == -(-122 // CHUNK) and "frames_seen" not in b
    assert a["jitter"] == b["jitter"] > 0
    assert res["aggregate"] == {"jitter": a["jitter"], "frames_seen": 122}
    assert res["video_seconds"] == 2 * 122 / 25


_PEAK_RSS = """
import resource, sys
from pathlib import Path
from vlogger.core.config import load_config
from vlogger.evaluation import collection
from vlogger.evaluation.motion import CPBD, PSNR, Jitter
from vlogger.evaluation.runner import evaluate
collection.METRICS = (Jitter, PSNR, CPBD)
folder = Path(sys.argv[1])
evaluate(folder, folder, None, load_config(None, "eval/protocol.yaml"), folder / "frames")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_videos(tmp_path, short_clips, link_inputs):
    """Peak memory over 4 videos is that of 1: nothing is kept per video. Each run in a fresh process
    (its peak RSS; tracemalloc would make the run six times slower), one metric of each way of reading
    (the track only, paired frames, sampled frames); the whole protocol's memory is in benchmarks/RESULTS.md."""
    clip, peaks = short_clips / "retalking_face5.mp4", []
    for n in (1, 4):
        folder = link_inputs(tmp_path / f"n{n}", clip, [f"v{i}.mp4" for i in range(n)])
        run = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(folder)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        peaks.append(int(run.stdout.split()[-1]) / 1024)
    # 4 videos' decoded frames kept (gen + ref, 60 frames of 524 x 524 each) would add 300 MB
    assert peaks[1] < peaks[0] + 150, peaks


def test_leaderboard_logs_a_wandb_table_offline(tmp_path, monkeypatch):
    import wandb  # noqa: F401  (an eval dependency)

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = {"protocol_version": "1.0", "identity_backbone": "dlib", "videos": 2, "scored": 2}
    board = tmp_path / "board.json"
    leaderboard.add(board, leaderboard.make_row(result | {"aggregate": {"jitter": 3.0}}, "ckpt-a", "model", None))
    leaderboard.log_wandb(leaderboard.load(board), "vlogger-test", tmp_path)  # beside the board
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_leaderboard_reads_each_direction_from_its_metric(tmp_path, monkeypatch):
    result = {"protocol_version": "1.0", "identity_backbone": "dlib", "videos": 2, "scored": 2}
    result["aggregate"] = {"jitter": 3.0, "psnr": 30.0, "lse_offset": -1.0}
    board = tmp_path / "board.json"
    leaderboard.add(board, leaderboard.make_row(result, "ckpt-a", "model", None))
    head = leaderboard.markdown(leaderboard.load(board)).splitlines()[2]
    assert "jitter ↓" in head and "psnr ↑" in head and "| lse_offset |" in head  # a signed offset has no better side
    monkeypatch.setattr(Jitter, "higher_is_better", True)
    assert "jitter ↑" in leaderboard.markdown(leaderboard.load(board)).splitlines()[2]


def test_report_plots_drift_over_time_and_shows_warnings(tmp_path):
    from vlogger.evaluation.report import write_report

    row = {"drift_block_seconds": 5.0, "drift_identity_dlib_blocks": [0.99, 0.98], "drift_colour_blocks": [0.2, 0.9]}
    results = {"protocol_version": "2.0", "lse_mode": "fast", "scored": 1, "videos": 1, "unscorable": [],
               "skipped_metrics": {}, "aggregate": {"drift_colour_slope": 8.4}, "per_video": {"a.mp4": row},
               "warnings": ["fvd from 3 samples (< 2048)"]}  # fmt: skip
    write_report(results, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "<b>Warning:</b> fvd from 3 samples" in page
    drift = page.split("<h2>Drift over time</h2>")[1].split("<h2>")[0]
    assert drift.startswith("<img src='data:image/png;base64,")
    results["per_video"] = {"a.mp4": {"jitter": 1.0}}
    write_report(results, tmp_path / "report.html")
    assert "no video long enough" in (tmp_path / "report.html").read_text()
