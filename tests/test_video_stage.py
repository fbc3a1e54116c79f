"""Stage 2 training infrastructure: windows with rendered controls, both phases, init from phase 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger.config import load_config

VAL = "[retalking_face5,upperbody_kim_7s]"


def tiny(shards, runs, name: str, phase: str, steps: int, extra: list[str] = ()) -> dict:
    over = [
        f"data.shards={shards}",
        f"data.val_identities={VAL}",
        f"phase={phase}",
        "data.size=32",
        "data.frames=4",
        "data.batch_size=2",
        "guidance.overlap=2",
        "model.channels=[16,32,64]",
        f"trainer.max_steps={steps}",
        f"trainer.val_every_steps={steps}",
        "trainer.limit_val_batches=1",
        f"logging.dir={runs}",
        f"logging.name={name}",
        "logging.logger=csv",
        f"logging.media_every_steps={steps}",
        "sampling.steps=2",
        *extra,
    ]
    return load_config(None, "train/video_tiny.yaml", over)


@pytest.mark.shared
def test_windows_carry_frames_controls_and_a_far_reference(real_shards):
    from vlogger.datasets.video import VideoDataModule

    shards, _ = real_shards
    cfg = tiny(shards, "unused", "x", "clip", 1)
    batch = next(iter(VideoDataModule(cfg).val_dataloader()))
    assert batch["frames"].shape == (2, 4, 3, 32, 32) and batch["reference"].shape == (2, 3, 32, 32)
    assert batch["controls"].shape == (2, 4, 14, 32, 32)
    assert batch["frames"].min() >= -1 and batch["frames"].max() <= 1
    semantic = batch["controls"][:, :, :7]
    torch.testing.assert_close(semantic.sum(2), torch.ones_like(semantic[:, :, 0]))  # one region per pixel
    assert (semantic[:, :, 1] > 0).float().mean() > 0.05  # the face is drawn


@pytest.fixture(scope="module")
def phases(real_shards, tmp_path_factory) -> dict:
    """Phase 1 for 3 steps, then phase 2 for 2 steps from its weights (32 px, tiny channels)."""
    from vlogger.training.run import train_video

    shards, _ = real_shards
    runs = tmp_path_factory.mktemp("video_runs")
    single = train_video(tiny(shards, runs, "single", "single", 3))
    ckpt = single["last_checkpoint"]
    clip = train_video(tiny(shards, runs, "clip", "clip", 2, [f"model.init_from={ckpt}"]))
    return {"single": single, "clip": clip, "runs": runs, "shards": shards}


@pytest.mark.shared
@pytest.mark.slow
def test_single_frame_phase_then_clip_phase_from_its_weights(phases, tmp_path):
    single, clip, shards = phases["single"], phases["clip"], phases["shards"]
    assert single["global_step"] == 3 and (phases["runs"] / "single" / "media" / "video-0000003.png").is_file()
    ckpt = single["last_checkpoint"]
    assert clip["global_step"] == 2
    from vlogger.models.video.module import VideoDiffusion

    ema = {
        k.removeprefix("ema.module."): v
        for k, v in torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"].items()
        if k.startswith("ema.module.")
    }
    started = VideoDiffusion(tiny(shards, tmp_path, "c2", "clip", 1, [f"model.init_from={ckpt}"])).model.state_dict()
    assert ema.keys() == started.keys()
    assert all(torch.equal(ema[k], started[k]) for k in ema)  # phase 2 starts from phase 1's EMA weights


@pytest.mark.shared
@pytest.mark.slow
def test_generate_writes_a_talking_video_with_the_audio(phases, tmp_path):
    import av

    from conftest import SHARED
    from vlogger.cli import main
    from vlogger.training.run import train_motion

    motion_cfg = load_config(
        None,
        "train/motion_tiny.yaml",
        [
            f"data.shards={phases['shards']}",
            f"data.val_identities={VAL}",
            "model.width=32",
            "model.depth=2",
            "model.heads=2",
            "trainer.max_steps=5",
            "trainer.val_every_steps=5",
            f"logging.dir={tmp_path}",
            "logging.logger=csv",
            "logging.media_every_steps=0",
        ],
    )
    motion = train_motion(motion_cfg)["last_checkpoint"]
    out = tmp_path / "gen"
    args = ["generate", "--image", str(SHARED / "data" / "images" / "portrait_hallo6.jpg")]
    args += ["--audio", str(SHARED / "data" / "audio" / "retalking_audio1.wav"), "--motion-checkpoint", motion]
    args += ["--video-checkpoint", phases["clip"]["last_checkpoint"], "--out", str(out), "--steps", "2"]
    assert main([*args, "--size", "64"]) == 0
    with av.open(str(out / "video.mp4")) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(video=0))
        assert (v.width, v.height) == (32, 32) and len(c.streams.audio) == 1
    with np.load(out / "motion.npz") as z:
        assert n == len(z["motion"]) > 100  # one frame per motion frame (5 s of speech at 25 fps)
