"""`vlogger evaluate` over a folder, and the leaderboard built from its results."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vlogger.core.video import encode_mp4
from vlogger.evaluation import leaderboard


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
    assert res["protocol_version"] == "1.0" and res["videos"] == 4 and res["scored"] == 2
    reasons = {u["video"]: u["reason"] for u in res["unscorable"]}
    assert "face tracked on only" in reasons["no_face.mp4"] and "too short" in reasons["short.mp4"]
    row = res["per_video"]["retalking_face5.mp4"]
    # the ground truth scored against itself
    assert row["lme"] == 0 and row["head_pose_error"] == 0 and row["psnr"] == 100 and row["ssim"] > 0.999
    assert row["av_confidence"] > 0.1 and abs(row["av_offset"]) <= 3
    assert "lse" in res["skipped_metrics"] and "vlogger zoo fetch syncnet_v2" in res["skipped_metrics"]["lse"]
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 8 and "no_face.mp4" in page

    board = tmp_path / "board.json"
    leaderboard.add(board, out / "results.json", "ground-truth")
    other = dict(res, protocol_version="0.9")
    (tmp_path / "old.json").write_text(json.dumps(other))
    leaderboard.add(board, tmp_path / "old.json", "old-protocol")
    md = leaderboard.markdown(leaderboard.load(board))
    assert "### protocol 1.0" in md and "### protocol 0.9" in md  # never in one table
    assert md.count("| ground-truth |") == 1
    html = leaderboard.write_html(leaderboard.load(board), tmp_path / "board.html").read_text()
    assert html.count("<table>") == 2 and "onclick" in html


@pytest.mark.slow
def test_fid_and_fvd_run_in_the_runner_with_weights_in_the_cache(tmp_path, monkeypatch, talking):
    """Weights in the official formats (random values) added with `zoo add-local`: FID/FVD are computed."""
    import torch

    from vlogger.core.config import load_config
    from vlogger.evaluation.inception import FIDInceptionV3
    from vlogger.evaluation.runner import evaluate
    from vlogger.zoo import add_local

    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path / "home"))
    torch.save(FIDInceptionV3().state_dict(), tmp_path / "pt_inception.pth")
    add_local("fid_inception_v3", tmp_path / "pt_inception.pth")

    class StandIn(torch.nn.Module):  # the I3D TorchScript's call signature, 400-d features
        def forward(self, x: torch.Tensor, rescale: bool, resize: bool, return_features: bool) -> torch.Tensor:
            return torch.nn.functional.adaptive_avg_pool3d(x.float(), (4, 10, 10)).flatten(1)[:, :400]

    torch.jit.script(StandIn()).save(str(tmp_path / "i3d.pt"))
    add_local("i3d_torchscript", tmp_path / "i3d.pt")
    frames, audio, path = talking
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    (ref / "a.mp4").symlink_to(path)
    (gen / "a.mp4").write_bytes(encode_mp4(frames[:, :, ::-1], 25, audio=audio))  # mirrored: a different video
    res = evaluate(gen, ref, None, load_config(None, "eval/protocol.yaml"))
    assert "fid" not in res["skipped_metrics"] and "fvd" not in res["skipped_metrics"], res["skipped_metrics"]
    assert res["aggregate"]["fid"] > 0 and res["aggregate"]["fvd"] > 0


def test_leaderboard_logs_a_wandb_table_offline(tmp_path, monkeypatch):
    import wandb  # noqa: F401  (an eval dependency)

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = {"protocol_version": "1.0", "identity_backbone": "dlib", "scored": 2, "aggregate": {"jitter": 3.0}}
    (tmp_path / "r.json").write_text(json.dumps(result))
    board = tmp_path / "board.json"
    leaderboard.add(board, tmp_path / "r.json", "ckpt-a")
    leaderboard.log_wandb(leaderboard.load(board), "vlogger-test")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
