"""Stage 2 training infrastructure: windows with rendered controls, both phases, init from phase 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger.core.config import load_config
from vlogger.core.spec import DataSpec
from vlogger.preprocessing.run import default_spec

VAL = "[synth_001]"  # beside the val split's synth_002


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
    return load_config(None, "train/video.yaml", over)


def test_windows_carry_frames_controls_and_a_far_reference(synthetic_shards):
    from vlogger.datasets.video import VideoDataModule

    shards = synthetic_shards
    cfg = tiny(shards, "unused", "x", "clip", 1)
    batch = next(iter(VideoDataModule(cfg).val_dataloader()))
    assert batch["frames"].shape == (2, 4, 3, 32, 32) and batch["reference"].shape == (2, 3, 32, 32)
    assert batch["controls"].shape == (2, 4, 17, 32, 32)  # the shards' parts: hands and iris classes too
    legacy = tiny(shards, "unused", "x", "clip", 1, ["model.parts=[face, body]"])
    batch = next(iter(VideoDataModule(legacy).val_dataloader()))
    assert batch["controls"].shape == (2, 4, 14, 32, 32)
    assert batch["frames"].min() >= -1 and batch["frames"].max() <= 1
    semantic = batch["controls"][:, :, :7]
    torch.testing.assert_close(semantic.sum(2), torch.ones_like(semantic[:, :, 0]))  # one region per pixel
    assert (semantic[:, :, 1] > 0).float().mean() > 0.05  # the face is drawn


@pytest.fixture(scope="module")
def phases(synthetic_shards, tmp_path_factory) -> dict:
    """Phase 1 for 3 steps, then phase 2 for 2 steps from its weights (32 px, tiny channels)."""
    from vlogger.training.run import train_video

    shards = synthetic_shards
    runs = tmp_path_factory.mktemp("video_runs")
    single = train_video(tiny(shards, runs, "single", "single", 3))
    ckpt = single["last_checkpoint"]
    clip = train_video(tiny(shards, runs, "clip", "clip", 2, [f"model.init_from={ckpt}"]))
    sr = ["superres={from_size: 32, noise_aug: 0.1, residual: true}", "data.size=64", "model.attention_levels=[]"]
    superres = train_video(tiny(shards, runs, "superres", "clip", 2, sr))
    return {"single": single, "clip": clip, "superres": superres, "runs": runs, "shards": shards}


@pytest.mark.slow
def test_single_frame_phase_then_clip_phase_from_its_weights(phases, tmp_path):
    single, clip, shards = phases["single"], phases["clip"], phases["shards"]
    assert single["global_step"] == 3 and (phases["runs"] / "single" / "media" / "video-0000003.png").is_file()
    ckpt = single["last_checkpoint"]
    assert clip["global_step"] == 2
    from vlogger.training.video import VideoDiffusion

    ema = {
        k.removeprefix("ema.module."): v
        for k, v in torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"].items()
        if k.startswith("ema.module.")
    }
    spec = DataSpec.of_shards(shards)
    started = VideoDiffusion(tiny(shards, tmp_path, "c2", "clip", 1, [f"model.init_from={ckpt}"]), spec)
    started = started.model.state_dict()
    assert ema.keys() == started.keys()
    assert all(torch.equal(ema[k], started[k]) for k in ema)  # phase 2 starts from phase 1's EMA weights


@pytest.mark.slow
def test_generate_writes_a_talking_video_with_the_audio(phases, tmp_path, shared_dir):
    import av

    from vlogger.cli import main
    from vlogger.training.run import train_motion

    motion_cfg = load_config(
        None,
        "train/motion.yaml",
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
    args = ["generate", "--image", str(shared_dir / "data" / "images" / "portrait_hallo6.jpg")]
    args += ["--audio", str(shared_dir / "data" / "audio" / "retalking_audio1.wav"), "--motion-checkpoint", motion]
    args += ["--video-checkpoint", phases["clip"]["last_checkpoint"], "--out", str(out), "--steps", "2"]
    assert main([*args, "--superres", phases["superres"]["last_checkpoint"]]) == 0
    with av.open(str(out / "video.mp4")) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(video=0))
        assert (v.width, v.height) == (64, 64) and len(c.streams.audio) == 1  # 32 px stage 2, then 32 -> 64
    with np.load(out / "motion.npz") as z:
        assert n == len(z["motion"]) > 100  # one frame per motion frame (5 s of speech at 25 fps)


@pytest.mark.slow
def test_super_resolution_checkpoints_chain_by_size(phases):
    from vlogger.generation.pipeline import load_cascade

    clip, sr = phases["clip"]["last_checkpoint"], phases["superres"]["last_checkpoint"]
    models = load_cascade(clip, [sr])
    assert [m.size for m in models] == [32, 64] and models[1].superres["from_size"] == 32
    with pytest.raises(ValueError, match="not a super-resolution checkpoint"):
        load_cascade(clip, [clip])
    with pytest.raises(ValueError, match="upsamples 32 px, the model before makes 64"):
        load_cascade(clip, [sr, sr])
    with pytest.raises(ValueError, match="give it to --superres"):
        load_cascade(sr, [])


@pytest.mark.slow
def test_reconstruction_writes_truth_and_baseline_aligned_with_the_video(phases, tmp_path, clips_dir):
    from vlogger.cli import main
    from vlogger.core.video import decode_mp4_bytes
    from vlogger.evaluation.motion import psnr

    out = tmp_path / "rec"
    clip = clips_dir / "retalking_face2.mp4"
    args = ["generate", "--motion-from", str(clip), "--start", "3", "--reference-frame", "0"]
    assert (
        main([*args, "--video-checkpoint", phases["clip"]["last_checkpoint"], "--out", str(out), "--steps", "2"]) == 0
    )
    videos = {
        k: decode_mp4_bytes((out / f"{k}.mp4").read_bytes()) for k in ("video", "ground_truth", "warped_reference")
    }
    shapes = {k: v.shape for k, v in videos.items()}
    assert len(set(shapes.values())) == 1 and shapes["video"][1:] == (32, 32, 3), shapes
    assert 45 <= shapes["video"][0] <= 55  # 5 s clip from second 3 on, at 25 fps
    # the baseline follows the real frames: closer to them than the reference frame held still
    truth, base = videos["ground_truth"], videos["warped_reference"]
    still = np.broadcast_to(base[:1], base.shape)
    assert psnr(base, truth) > psnr(still, truth)


@pytest.mark.slow
def test_shared_starting_noise_keeps_frames_alike_across_outpainting_windows():
    from vlogger.models.video.generate import generate_frames
    from vlogger.training.video import VideoDiffusion

    torch.manual_seed(0)  # the network's initial and perturbed weights
    sets = ["phase=clip", "data.size=16", "data.frames=4", "guidance.overlap=2", "model.channels=[8,16]"]
    sets += ["model.parts=[face, body]"]  # 14 control channels
    sets += ["model.attention_levels=[]", "model.temporal_attention_levels=[1]", "model.head_dim=8"]
    module = VideoDiffusion(load_config(None, "train/video.yaml", sets), default_spec()).eval()
    with torch.no_grad():  # wake the zero-initialised layers: an output that depends on the noise
        for p in module.ema.module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    g = torch.Generator().manual_seed(0)
    controls = torch.rand(1, 14, 16, 16, generator=g).expand(10, -1, -1, -1)  # one pose held: 4 windows
    reference = torch.rand(3, 16, 16, generator=g) * 2 - 1
    change = {}
    for correlation in (0.0, 1.0):
        module.cfg["sampling"]["noise_correlation"] = correlation
        frames = generate_frames(module, reference, controls, torch.Generator().manual_seed(1), steps=3)
        change[correlation] = (frames[1:] - frames[:-1]).abs().mean().item()
    assert change[1.0] < 0.5 * change[0.0]
