"""Streaming generation: frames leave the cascade window by window, and `--stream`'s fragmented
video.mp4 holds the same frames as the video written at the end."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from vlogger.core.config import load_config
from vlogger.preprocessing.run import default_spec

TINY = ["phase=clip", "data.frames=4", "guidance.overlap=2", "model.channels=[8,16]", "model.head_dim=8"]
TINY += ["model.attention_levels=[1]", "model.temporal_attention_levels=[1]", "sampling.steps=2"]
TINY += ["model.parts=[face, body]"]  # 14 control channels, as the random controls below
SUPERRES = ["superres={from_size: 16, noise_aug: 0.1, residual: true}", "data.size=32", "model.attention_levels=[]"]


def awake(cfg: dict, spec, seed: int):
    """An untrained tiny model whose zero-initialised layers are perturbed: its output depends
    on the noise, the controls and the known frames, as a trained model's does."""
    from vlogger.training.video import VideoDiffusion

    torch.manual_seed(seed)
    module = VideoDiffusion(cfg, spec).eval()
    with torch.no_grad():
        for p in module.ema.module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return module


def counted(chunks: list[torch.Tensor], pulled: list[int]):
    for c in chunks:
        pulled.append(len(c))
        yield c


def test_cascade_streams_window_by_window_with_the_frames_of_the_whole_run():
    from vlogger.models.video.generate import generate_frames, stream_frames

    stage2 = awake(load_config(None, "train/video.yaml", [*TINY, "data.size=16"]), default_spec(), 0)
    sr = awake(load_config(None, "train/video.yaml", [*TINY, *SUPERRES]), default_spec(), 1)
    g = torch.Generator().manual_seed(0)
    n = 11  # windows at 0, 2, 4, 6, 8 (the last runs past the end)
    controls = {s: torch.rand(n, 14, s, s, generator=g) for s in (16, 32)}
    reference = {s: torch.rand(3, s, s, generator=g) * 2 - 1 for s in (16, 32)}

    whole_low = generate_frames(stage2, reference[16], controls[16], torch.Generator().manual_seed(1), desc=None)
    whole = generate_frames(sr, reference[32], controls[32], torch.Generator().manual_seed(2), lowres=whole_low)

    pulled: dict[str, list[int]] = {"controls": [], "low": []}
    low = stream_frames(stage2, reference[16], controls[16], n, torch.Generator().manual_seed(1), desc=None)
    ctrl = counted(list(controls[32].split(3)), pulled["controls"])
    out = stream_frames(
        sr, reference[32], ctrl, n, torch.Generator().manual_seed(2), lowres=counted(low, pulled["low"])
    )
    first = next(out)
    # the first window (4 frames) needed 4 controls (two chunks of 3) and stage 2's first window alone
    assert len(first) == 4 and pulled == {"controls": [3, 3], "low": [4]}
    rest = list(out)
    assert [len(c) for c in rest] == [2, 2, 2, 1]  # each next window's new frames, cut at n
    streamed = torch.cat([first, *rest])
    torch.testing.assert_close(streamed, whole, rtol=0, atol=0)
    assert (whole[1:] - whole[:-1]).abs().mean() > 1e-3  # the frames differ: the check has something to see


@pytest.fixture(scope="module")
def motion(synthetic_shards):
    """Two seconds of a synthetic clip's own motion and audio (what `--motion-from` makes)."""
    import webdataset as wds

    from vlogger.core.spec import DataSpec
    from vlogger.datasets.shards import all_shard_urls
    from vlogger.generation.pipeline import BodyFiles
    from vlogger.generation.reconstruct import reconstruction

    raw = next(iter(wds.WebDataset(all_shard_urls(synthetic_shards), shardshuffle=False, empty_check=False)))
    sample = {**raw, "json": {"source": raw["__key__"], **json.loads(raw["json"])}}
    sample |= {k: np.load(io.BytesIO(raw[k])) for k in ("lmk.npy", "pose.npy")}
    spec = DataSpec.of_shards(synthetic_shards)
    return reconstruction(sample, spec, BodyFiles(), 0, 10, 60).motion


def checkpoint(module, path) -> str:
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return str(path)


def test_streamed_video_equals_the_video_written_at_the_end(motion, tmp_path):
    from vlogger.core.video import decode_mp4_bytes
    from vlogger.generation.pipeline import Sampling, generate_video

    video = checkpoint(
        awake(load_config(None, "train/video.yaml", [*TINY, "data.size=16"]), motion.spec, 0), tmp_path / "v.ckpt"
    )
    sr = checkpoint(
        awake(load_config(None, "train/video.yaml", [*TINY, *SUPERRES]), motion.spec, 1), tmp_path / "s.ckpt"
    )
    run = {"superres": [sr], "size": None}
    whole = generate_video(motion, video, tmp_path / "whole", Sampling(steps=2), **run)
    chunks = []
    streamed = generate_video(
        motion, video, tmp_path / "stream", Sampling(steps=2), **run, stream=True, on_frames=chunks.append
    )
    assert whole.shape == (50, 32, 32, 3) and np.array_equal(whole, streamed)
    assert [len(c) for c in chunks] == [4] + [2] * 23  # window by window
    assert np.array_equal(np.concatenate(chunks), whole)
    files = {k: (tmp_path / k / "video.mp4").read_bytes() for k in ("whole", "stream")}
    assert b"moof" in files["stream"] and b"moof" not in files["whole"]  # fragmented
    decoded = {k: decode_mp4_bytes(v) for k, v in files.items()}
    assert len(decoded["whole"]) == 50 and np.array_equal(decoded["whole"], decoded["stream"])


@pytest.mark.parametrize("sampler", ["ddim", "dpm", "ddpm"])
def test_stage_2_sampling_never_reads_a_value_back_to_the_host(sampler):
    """On the meta device every read of a tensor's value (.item(), bool(), int()) fails: each
    would be a host sync per step on a GPU. The whole guided, outpainting sample runs there."""
    from vlogger.training.video import VideoDiffusion

    sets = [*TINY, "data.size=16", "sampling.guidance=1.5", f"sampling.sampler={sampler}"]
    module = VideoDiffusion(load_config(None, "train/video.yaml", sets), default_spec()).to("meta").eval()
    meta = {"device": "meta"}
    known, mask = torch.zeros(1, 4, 3, 16, 16, **meta), torch.zeros(1, 4, 1, 16, 16, **meta)
    x = module.sample(torch.zeros(1, 3, 16, 16, **meta), torch.zeros(1, 4, 14, 16, 16, **meta), known, mask, None, 3)
    assert x.shape == (1, 4, 3, 16, 16)


def test_ddim_step_is_the_samplers_and_the_student_target_inverts_it():
    from diffusers import DDIMScheduler

    from vlogger.models.diffusion import Diffusion

    d = Diffusion(load_config(None, "train/video.yaml")["diffusion"])
    sched = DDIMScheduler.from_config(d.train_scheduler.config)
    sched.set_timesteps(4)
    assert torch.equal(d.ddim_grid(4), sched.timesteps)
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    for t in sched.timesteps:  # the last step lands on the clean end (t_prev < 0)
        tt, prev = t.reshape(1), (t - 250).reshape(1)
        stepped = d.ddim_step(x_t, x0, tt, prev)
        torch.testing.assert_close(stepped, sched.step(x0, t, x_t).prev_sample)
        torch.testing.assert_close(d.ddim_x0(x_t, stepped, tt, prev), x0, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_distillation_run_writes_a_student_that_samples_alone_in_2_steps(synthetic_shards, tmp_path):
    from vlogger.core.spec import DataSpec
    from vlogger.generation.pipeline import load_video_model
    from vlogger.training.run import train_video

    teacher = awake(
        load_config(None, "train/video.yaml", [*TINY, "data.size=16"]), DataSpec.of_shards(synthetic_shards), 0
    )
    ckpt = checkpoint(teacher, tmp_path / "teacher.ckpt")
    sets = [*TINY, "data.size=16", f"data.shards={synthetic_shards}", "data.val_identities=[synth_001]"]
    sets += ["trainer.max_steps=2", "trainer.val_every_steps=2", "trainer.limit_val_batches=1"]
    sets += [f"logging.dir={tmp_path}", "logging.logger=csv", "logging.media_every_steps=0"]
    sets += [f"distill={{teacher: {ckpt}, steps: 2}}"]
    summary = train_video(load_config(None, "train/video.yaml", sets))
    (tmp_path / "teacher.ckpt").unlink()  # generation needs the student alone
    student = load_video_model(summary["last_checkpoint"])
    assert summary["global_step"] == 2 and student.cfg["sampling"]["steps"] == 2
    calls = []
    student.ema.module.register_forward_hook(lambda *_: calls.append(1))
    frames = student.sample(torch.zeros(1, 3, 16, 16), torch.rand(1, 4, 14, 16, 16))
    assert frames.shape == (1, 4, 3, 16, 16) and len(calls) == 2


@pytest.mark.slow
def test_distilled_student_moves_towards_what_its_teacher_makes_in_twice_the_steps(tmp_path):
    """40 optimiser steps on one batch of conditions: the student's 2-step samples come closer to
    the teacher's 4-step ones than the teacher's own 2-step samples are (it starts as the teacher)."""
    from vlogger.core.errors import ContractError
    from vlogger.training.video import VideoDiffusion

    spec = default_spec()
    teacher = awake(load_config(None, "train/video.yaml", [*TINY, "data.size=16"]), spec, 0)
    ckpt = checkpoint(teacher, tmp_path / "teacher.ckpt")
    distill = f"distill={{teacher: {ckpt}, steps: 2}}"
    with pytest.raises(ContractError, match="in the teacher"):
        VideoDiffusion(
            load_config(None, "train/video.yaml", [*TINY, "data.size=16", "model.channels=[8,32]", distill]), spec
        )
    student = VideoDiffusion(load_config(None, "train/video.yaml", [*TINY, "data.size=16", distill]), spec)
    g = torch.Generator().manual_seed(3)
    ref, ctrl = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1, torch.rand(2, 4, 14, 16, 16, generator=g)
    batch = {"frames": torch.rand(2, 4, 3, 16, 16, generator=g) * 2 - 1, "reference": ref, "controls": ctrl}

    def sample(module, steps: int) -> torch.Tensor:
        return module.sample(ref, ctrl, generator=torch.Generator().manual_seed(4), steps=steps)

    goal = sample(teacher, 4)
    before = (sample(teacher, 2) - goal).abs().mean()
    opt = torch.optim.Adam(student.model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    for _ in range(40):
        loss = student.losses(batch, student.model, None)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.ema.module.load_state_dict(student.model.state_dict())
    after = (sample(student, 2) - goal).abs().mean()
    assert after < 0.92 * before, (before, after)


def test_stream_option_names_the_raw_frames_target(tmp_path):
    import numpy as np

    from vlogger.cli import _RawFrames, build_parser

    def stream(*extra: str):
        return build_parser().parse_args(["generate", "--video-checkpoint", "v.ckpt", *extra]).stream

    assert (stream(), stream("--stream"), stream("--stream", "-")) == (None, "", "-")
    frames = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    with _RawFrames(str(tmp_path / "pipe")) as raw:
        raw.write(frames[:1])
        raw.write(frames[1:])
    assert raw.first is not None and (tmp_path / "pipe").read_bytes() == frames.tobytes()
