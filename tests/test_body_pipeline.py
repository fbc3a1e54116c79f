"""The body models inside the pipeline: preprocessing with SMPL-X, clear errors, `vlogger render`."""

from __future__ import annotations

import numpy as np
import pytest
from smplx_synthetic import write_synthetic_smplx

from vlogger.core.config import load_config
from vlogger.core.errors import UsageError
from vlogger.datasets.shards import all_shard_urls, clip_arrays


@pytest.mark.shared
def test_preprocess_fits_smplx_when_configured(tmp_path, clips_dir, link_inputs):
    models = write_synthetic_smplx(tmp_path / "models")
    inputs = link_inputs(tmp_path / "in", clips_dir / "retalking_face5.mp4", ["face5.mp4"])
    from vlogger.preprocessing.run import preprocess

    over = ["fit.body_model=smplx", f"fit.model_path={models}", "fit.max_residual_px=50"]
    stats = preprocess(inputs, tmp_path / "out", load_config(None, "preprocess/default.yaml", over))
    assert stats["clips"] == 1, stats
    (clip,) = clip_arrays(all_shard_urls(tmp_path / "out"), ["params.npz", "lmk.npy"])
    p = clip["params.npz"]
    n = len(clip["lmk.npy"])
    assert p["model"] == "smplx" and p["expression"].shape == (n, 13) and p["betas"].ndim == 1
    assert p["left_hand_pose"].shape == p["right_hand_pose"].shape == (n, 45)  # zeros where no hand was seen
    assert np.isfinite(p["left_hand_pose"]).all() and np.isfinite(p["right_hand_pose"]).all()
    assert np.isfinite(p["residual_px"]).all() and clip["json"]["quality"]["fit_residual_px"] > 0


def test_missing_body_model_files_fail_before_any_video(tmp_path):
    from vlogger.preprocessing.run import preprocess

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"not a video")
    for over, match in [
        (["fit.body_model=smplx"], "SMPLX_NEUTRAL"),
        ([f"fit.basis={tmp_path / 'none.npz'}"], "fit-basis"),
        (["fit.body_model=flame"], "choose one of"),
    ]:
        with pytest.raises(UsageError, match=match):
            preprocess(tmp_path / "in", tmp_path / "out", load_config(None, "preprocess/default.yaml", over))
    assert not list((tmp_path / "out").glob("*.tar"))


@pytest.mark.shared
def test_render_command_writes_side_by_side_videos(real_shards, tmp_path):
    from vlogger.cli import main
    from vlogger.core.video import decode_mp4_bytes

    shards, _ = real_shards
    out = tmp_path / "render"
    assert main(["render", str(shards), "--out", str(out), "--key", "retalking_face2", "--size", "128"]) == 0
    video = decode_mp4_bytes((out / "retalking_face2-000.mp4").read_bytes())
    (clip,) = [c for c in clip_arrays(all_shard_urls(shards), ["params.npz"]) if "face2" in c["key"]]
    assert video.shape == (clip["json"]["n_frames"], 128, 512, 3)
    assert (out / "controls_sheet.png").stat().st_size > 10_000
    semantic = video[:, :, 128:256].astype(int)
    skin = np.abs(semantic - [224, 172, 138]).sum(-1) < 40  # the palette's skin colour
    assert skin.mean() > 0.1  # the face is drawn on every frame, not a blank panel
