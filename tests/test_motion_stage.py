"""Stage 1: denoiser, sampling, outpainting, Lightning training (resume, DDP) and generate-motion."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vlogger.body.geometry import euler_to_matrix
from vlogger.body.motion import MotionLayout, motion_stats, reference_of, reference_vector, to_motion
from vlogger.core.config import load_config, merge
from vlogger.core.errors import ContractError
from vlogger.core.linear_audio import clip_features, fit_ridge
from vlogger.core.mel import LogMel, warp_frequencies
from vlogger.models.motion.denoiser import MotionDenoiser
from vlogger.models.motion.generate import generate_long, seam_jumps
from vlogger.models.sampling import window_starts
from vlogger.preprocessing.run import default_spec
from vlogger.training.motion import HAND_BUFFERS, MotionDiffusion

VAL_IDS = "[synth_001]"  # beside the val split's synth_002


def tiny_overrides(shards: Path, run_dir: Path, name: str, steps: int) -> list[str]:
    return [
        f"data.shards={shards}",
        f"data.val_identities={VAL_IDS}",
        "data.batch_size=8",
        "model.width=32",
        "model.depth=2",
        "model.heads=2",
        f"trainer.max_steps={steps}",
        f"trainer.val_every_steps={steps}",
        "trainer.limit_val_batches=2",
        f"logging.dir={run_dir}",
        f"logging.name={name}",
        f"logging.media_every_steps={steps}",
        "sampling.steps=2",
    ]


SMALL = ["model.width=32", "model.depth=2", "model.heads=2"]


def small_module(causal: bool = True, centre_audio: str = "window") -> MotionDiffusion:
    overrides = [*SMALL, "model.parts=[face, body]", f"data.centre_audio={centre_audio}"]
    cfg = load_config(None, "train/motion.yaml", overrides)
    cfg["model"]["causal"] = causal
    dim = MotionLayout(cfg["model"]["n_expression"]).dim
    torch.manual_seed(0)
    module = MotionDiffusion(cfg, torch.zeros(dim), torch.ones(dim), default_spec())
    for p in module.ema.module.parameters():  # a random, non-trivial EMA network
        p.data.normal_(0, 0.1)
    return module.eval()


def window_inputs(module: MotionDiffusion, b: int = 2):
    d, k = module.cfg["data"], module.cfg["model"]["n_expression"]
    g = torch.Generator().manual_seed(1)
    mel = torch.randn(b, (d["window"] + 2 * d["mel_context"]) * d["rows_per_frame"], 80, generator=g)
    return mel, torch.randn(b, MotionLayout(k).reference_dim, generator=g)


def test_audio_augmentation_only_while_training():
    module = small_module()
    module.cfg["augment"] = {"vtlp": 0.0, "mel_noise": 0.0, "freq_mask": 20}
    mel, _ = window_inputs(module, b=8)
    assert torch.equal(module.augment_mel(mel, None), mel)  # eval: the recording as it is
    module.train()
    out = module.augment_mel(mel, torch.Generator().manual_seed(0))
    masked = (out != mel).any(1)  # (B, bins): bins replaced in each window
    assert masked.any() and (masked.sum(1) <= 20).all()
    for b, bins in enumerate(masked):  # one contiguous band, each bin at its window mean
        idx = bins.nonzero().squeeze(1)
        if len(idx):
            assert (idx.diff() == 1).all()
            torch.testing.assert_close(out[b, :, idx], mel[b, :, idx].mean(0, keepdim=True).expand(mel.shape[1], -1))
    module.cfg["augment"] = {"vtlp": 0.0, "mel_noise": 0.5, "freq_mask": 0}
    noisy = module.augment_mel(mel, torch.Generator().manual_seed(0)) - mel
    assert abs(noisy.std().item() - 0.5) < 0.02


def test_vocal_tract_warp_moves_a_tone_to_where_the_scaled_tone_lies():
    """warp_frequencies(alpha) of a tone at f is the log-mel of a tone at alpha * f; alpha 1 keeps it."""
    t = torch.arange(16000) / 16000
    logmel = LogMel()
    tone = {f: logmel(torch.sin(2 * torch.pi * f * t))[None] for f in (800.0, 880.0, 1000.0, 1200.0)}
    peak = {f: m[0, 40].argmax().item() for f, m in tone.items()}
    assert len(set(peak.values())) == 4  # the four tones lie in different bins
    for f, alpha in ((800.0, 1.1), (1000.0, 1.2), (1000.0, 0.88)):
        warped = warp_frequencies(tone[f], torch.tensor([alpha]), 55.0, 7600.0)
        assert warped[0, 40].argmax().item() == peak[round(f * alpha)]
    same = warp_frequencies(tone[800.0], torch.tensor([1.0]), 55.0, 7600.0)
    torch.testing.assert_close(same, tone[800.0], atol=1e-4, rtol=0)
    module = small_module().train()
    module.cfg["augment"] = {"vtlp": 0.2, "mel_noise": 0.0, "freq_mask": 0}
    mel = tone[1000.0].expand(4, -1, -1)
    peaks = module.augment_mel(mel, torch.Generator().manual_seed(0))[:, 40].argmax(-1)
    assert len(set(peaks.tolist())) > 1  # each window its own vocal tract


def test_ridge_line_predicts_a_new_clips_jaw_from_its_rows():
    """The closed-form line of `model.jaw_prior` on clips whose jaw is a delayed mix of two of
    their feature channels (plus noise): on a clip it never saw it predicts the jaw (r > 0.9), and
    the context a frame sees reaches the delay (2 frames later here)."""
    rng = np.random.default_rng(0)
    r, c, bins = 2, 3, 16

    def clip(n: int) -> tuple[np.ndarray, np.ndarray]:
        rows = rng.normal(size=(n * r, bins))
        per_frame = rows.reshape(n, r, bins)[:, :, [3, 7]].mean(1) @ np.array([1.0, -0.5])
        jaw = np.roll(per_frame, -2) + 0.1 * rng.normal(size=n)  # the jaw follows the sound 2 frames ahead
        return clip_features(rows, n, r, c)[2:-2], jaw[2:-2]

    (x, y), (x_new, y_new) = clip(400), clip(200)
    w, bias = fit_ridge(x, y, 10.0)
    assert np.corrcoef(x_new @ w + bias, y_new)[0, 1] > 0.9
    assert abs((x @ w + bias).std() - 1) < 1e-6  # unit spread over the fit: where a network's inputs sit
    assert np.abs(w.reshape(2 * c + 1, r, bins)).sum((1, 2)).argmax() == c + 2  # the weight is 2 frames on


def test_jaw_prior_travels_in_the_checkpoint_and_feeds_the_audio(synthetic_shards):
    """`model.jaw_prior` fits the line on the training clips, the EMA network the sampler uses
    carries it, a module loaded from the state (as `load_motion_model` builds one) has it, and the
    denoiser's output moves with it."""
    from vlogger.datasets.motion import MotionDataModule

    overrides = [f"data.shards={synthetic_shards}", *SMALL, "model.parts=[face, body]", "model.jaw_prior=100.0"]
    cfg = load_config(None, "train/motion.yaml", overrides)
    dm = MotionDataModule(cfg)
    w, bias = dm.jaw_prior(cfg["model"]["jaw_prior"])
    d = cfg["data"]
    assert w.shape == ((2 * d["mel_context"] + 1) * d["rows_per_frame"] * dm.spec.audio_features["n_mels"],)
    stats = dm.stats()
    module = MotionDiffusion(cfg, stats.mean, stats.std, dm.spec, None, (w, bias)).eval()
    torch.testing.assert_close(module.ema.module.jaw_prior.weight, torch.as_tensor(w, dtype=torch.float32))
    loaded = MotionDiffusion(cfg, stats.mean, stats.std, dm.spec)
    assert not loaded.ema.module.jaw_prior.weight.any()  # zeros until the state fills them
    loaded.load_state_dict(module.state_dict())
    torch.testing.assert_close(loaded.ema.module.jaw_prior.bias, torch.tensor(bias, dtype=torch.float32))
    mel, ref = window_inputs(module)
    net, x, t = module.ema.module, torch.randn(2, d["window"], module.layout.dim), torch.tensor([500, 500])
    before = net(x, t, mel, ref)
    net.jaw_prior.weight.mul_(-1)
    assert not torch.allclose(before, net(x, t, mel, ref))
    assert small_module().model.jaw_prior is None  # 0: no line, the network as before


@pytest.mark.parametrize("causal", [True, False])
def test_denoiser_mask(causal):
    net = MotionDenoiser(20, 10, window=12, width=32, depth=2, heads=2, causal=causal, dropout=0.0).eval()
    x = torch.randn(1, 12, 20)
    mel = torch.randn(1, (12 + 4) * 4, 80)
    ref, t = torch.randn(1, 10), torch.tensor([500])
    y = x.clone()
    y[:, 8:] += 1.0
    a, b = net(x, t, mel, ref), net(y, t, mel, ref)
    past_same = torch.allclose(a[:, :8], b[:, :8], atol=1e-5)
    assert past_same == causal  # a causal model's past ignores the future; a full one does not
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_sampling_is_seeded_and_keeps_known_frames():
    module = small_module()
    mel, ref = window_inputs(module)
    n, dim = module.cfg["data"]["window"], module.layout.dim
    known = torch.randn(2, n, dim)
    mask = torch.zeros(2, n, 1)
    mask[:, :25] = 1
    for sampler in ("ddim", "dpm", "ddpm"):
        a = module.sample(mel, ref, known, mask, torch.Generator().manual_seed(3), sampler=sampler, steps=3)
        b = module.sample(mel, ref, known, mask, torch.Generator().manual_seed(3), sampler=sampler, steps=3)
        c = module.sample(mel, ref, known, mask, torch.Generator().manual_seed(4), sampler=sampler, steps=3)
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a[:, 25:], c[:, 25:])
        torch.testing.assert_close(a[:, :25], known[:, :25])
    with pytest.raises(ValueError, match="sampler"):
        module.sample(mel, ref, sampler="euler")


def test_compiled_training_keeps_checkpoint_keys():
    """torch.compile wraps the forward used in training, not the module tree checkpoints save."""
    plain = small_module()
    cfg = {**plain.cfg, "trainer": {**plain.cfg["trainer"], "compile": True}}
    compiled = MotionDiffusion(cfg, plain.motion_mean, plain.motion_std, default_spec())
    assert compiled.forward_train is not compiled.model
    assert list(compiled.state_dict()) == list(plain.state_dict())


def clip_params(seed: int, n: int, still_coefficient: int | None, joints_seen: bool) -> dict:
    """Params of a synthetic talking clip: smooth random expression and head pose; one expression
    coefficient held still, or the body joints never seen, where asked."""
    rng = np.random.default_rng(seed)

    def wave(*shape: int, amp: float) -> np.ndarray:
        """Sines of random frequency and phase per channel: stationary, like talking."""
        f, phase = rng.uniform(0.01, 0.1, shape), rng.uniform(0, 2 * np.pi, shape)
        t = np.arange(n).reshape(n, *[1] * len(shape))
        return (amp * np.sin(2 * np.pi * f * t + phase)).astype(np.float32)

    expression = wave(32, amp=0.1)
    if still_coefficient is not None:
        expression[:, still_coefficient] = 0.3
    angles = torch.as_tensor(wave(3, amp=0.1))
    scale = 100 * np.exp(wave(amp=0.02))
    body = np.tile([[0.0, 150.0, 0.0]], (8, 1)).astype(np.float32) + wave(8, 3, amp=10.0)
    return {
        "expression": expression,
        "rotation": euler_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2]).numpy(),
        "scale": scale,
        "translation": 128 + wave(3, amp=5.0),
        "body": body,
        "body_visible": np.full((n, 8), float(joints_seen), np.float32),
    }


@pytest.mark.parametrize("floored", [False, True])
def test_validation_loss_stays_bounded_where_training_did_not_move(floored):
    """Training clips hold expression coefficient 5 still and never see the body; the validation
    clip moves in both. With the configured group floor every part's loss stays near 1; with the
    plain per-dimension std (floor 0, as before issue 19) the same clip costs hundreds."""
    cfg = load_config(None, "train/motion.yaml", [*SMALL, "model.parts=[face, body]"])
    k, n = cfg["model"]["n_expression"], cfg["data"]["window"]
    floor = cfg["data"]["std_floor"] if floored else 0.0
    assert floor > 0 or not floored
    stats = motion_stats([clip_params(s, 200, 5, joints_seen=False) for s in range(4)], k, floor)
    torch.manual_seed(0)
    module = MotionDiffusion(cfg, stats.mean, stats.std, default_spec()).eval()
    val = clip_params(9, 2 * n, None, joints_seen=True)
    val["expression"][:, 5] += 0.1 * np.sin(np.arange(2 * n) / 5)  # ±0.1 where training never moved
    ref = reference_of(val, 0)
    window = {key: v[n:] for key, v in val.items()}
    mel, _ = window_inputs(module)
    batch = {
        "motion": to_motion(window, ref, k).expand(2, -1, -1),
        "mel": mel,
        "ref": reference_vector(ref, k).expand(2, -1),
    }
    with torch.no_grad():
        out = module.losses(batch, module.ema.module, torch.Generator().manual_seed(1))
    parts = {name: float(out[f"loss_{name}"]) for name in ("expression", "jaw", "rotation", "translation", "body")}
    if not floored:
        assert parts["expression"] > 100 and parts["body"] > 100 and parts["jaw"] < 10, parts
    else:
        assert float(out["loss"]) < 5 and max(parts.values()) < 5, parts
    # the parts partition the vector: their size-weighted mean is the loss
    lay = module.layout
    weighted = sum(parts[name] * (sl.stop - sl.start) for name, sl in lay.groups.items()) / lay.dim
    assert weighted == pytest.approx(float(out["loss"]), rel=1e-5)


@pytest.mark.parametrize("n_frames", [1, 49, 50, 51, 173])
def test_outpainting_covers_any_length(n_frames):
    module = small_module()
    d = module.cfg["data"]
    starts = window_starts(n_frames, d["window"], 25)
    assert starts[-1] + d["window"] >= n_frames and all(b - a == 25 for a, b in itertools.pairwise(starts))
    mel = np.random.default_rng(0).normal(size=(n_frames * d["rows_per_frame"], 80)).astype(np.float32)
    _, ref = window_inputs(module, 1)
    out = generate_long(module, mel, ref[0], n_frames, torch.Generator().manual_seed(0), steps=2)
    assert out.shape == (n_frames, module.layout.dim) and torch.isfinite(out).all()
    if len(starts) > 1:
        jumps = seam_jumps(out, starts, 25, module.layout.face)
        assert jumps["borders"] == len([s for s in starts[1:] if s + 25 < n_frames])


@pytest.mark.parametrize("centre_audio", ["window", "clip"])
def test_a_recordings_level_does_not_move_the_motion(centre_audio):
    """Either centring (`data.centre_audio`) takes away a louder recording's constant offset: the
    generated motion is the same; an offset over half the clip only moves it."""
    module = small_module(centre_audio=centre_audio)
    r, n = module.cfg["data"]["rows_per_frame"], 90
    mel = np.random.default_rng(0).normal(size=(n * r, 80)).astype(np.float32)
    offset = 3.0  # a louder recording: log-mel rows all shift alike
    _, ref = window_inputs(module, 1)
    out = [generate_long(module, m, ref[0], n, torch.Generator().manual_seed(0), steps=2) for m in (mel, mel + offset)]
    torch.testing.assert_close(out[0], out[1], atol=1e-4, rtol=1e-4)
    louder_half = mel.copy()
    louder_half[n * r // 2 :] += 3.0  # not a constant offset: the motion moves
    moved = generate_long(module, louder_half, ref[0], n, torch.Generator().manual_seed(0), steps=2)
    assert not torch.allclose(out[0], moved, atol=1e-3)


def test_clip_centring_rejects_an_unknown_value():
    with pytest.raises(ValueError, match="centre_audio: 'file'"):
        small_module(centre_audio="file")


@pytest.fixture(scope="module")
def trained(synthetic_shards, tmp_path_factory) -> dict:
    """A tiny stage-1 run on synthetic shards (W&B offline), then resumed for 10 more steps."""
    from vlogger.training.run import train_motion

    shards = synthetic_shards
    runs = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, "train/motion.yaml", tiny_overrides(shards, runs, "tiny", 30))
    first = train_motion(cfg)
    cfg["trainer"]["max_steps"] = 40
    second = train_motion(cfg, resume="auto")
    return {"first": first, "second": second, "run": runs / "tiny", "shards": shards, "cfg": cfg}


def test_last_checkpoint_is_the_last_step_when_the_monitor_stops_improving(tmp_path):
    """Resuming reads last.ckpt: it must hold the run's last step even when the monitored metric
    peaked early (Lightning's own save_last kept the step of the last improvement: a stage-1 run of
    1500 steps left last.ckpt at step 375), while the best-k files keep the peak."""
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    from vlogger.training.run import build_trainer

    class Peaks(L.LightningModule):  # val/jaw_r falls after the first validation
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, i):
            return (self.w - 1).pow(2).sum()

        def validation_step(self, batch, i):
            self.log_dict({"val/jaw_r": -float(self.global_step), "val/loss": 1.0})

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return DataLoader(TensorDataset(torch.zeros(8, 1)), batch_size=1)

        val_dataloader = train_dataloader

    over = ["trainer.max_steps=4", "trainer.val_every_steps=1", "trainer.limit_val_batches=1", "logging.logger=csv"]
    cfg = load_config(None, "train/motion.yaml", [*over, f"logging.dir={tmp_path}", "checkpoint.save_top_k=1"])
    trainer = build_trainer(cfg, tmp_path / "run", [])
    trainer.fit(Peaks())
    ckpts = tmp_path / "run" / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 4
    assert [p.name for p in ckpts.glob("step*.ckpt")] == ["step0000001-val1.0000.ckpt"]
    assert trainer.checkpoint_callback.best_model_path.endswith("step0000001-val1.0000.ckpt")


@pytest.mark.slow
def test_training_writes_checkpoints_media_and_logs(trained):
    run = trained["run"]
    first = trained["first"]
    assert first["global_step"] == 30 and np.isfinite(first["val_loss_start"]) and np.isfinite(first["val_loss_end"])
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 40
    prefixes = {k.split(".")[0] for k in ckpt["state_dict"]}
    # the model once, EMA, statistics, and the hand PCA basis its motion is coded in (the synthetic shards have hands)
    hands = {f"hand_{name}" for name in HAND_BUFFERS}
    assert prefixes == {"model", "ema", "motion_mean", "motion_std"} | hands
    assert ckpt["state_dict"]["hand_components"].shape[0] == ckpt["hyper_parameters"]["cfg"]["model"]["hand_components"]
    assert len(list((run / "checkpoints").glob("step*.ckpt"))) >= 1
    assert (run / "media" / "motion-0000000.png").is_file() and (run / "media" / "motion-0000030.mp4").is_file()
    assert list((run / "wandb").glob("offline-run-*"))
    assert json.loads((run / "summary.json").read_text())["resumed_from"].endswith("last.ckpt")
    parts = {f"loss_{p}" for p in ("expression", "jaw", "rotation", "translation", "body")}
    assert parts <= set(first["val_start"]) and parts <= set(first["val_end"])  # what a large loss is made of
    # checkpoints are kept by the sampled jaw's correlation with the truth (configs/train/motion.yaml `monitor`)
    assert -1 <= first["val_end"]["jaw_r"] <= 1 and first["val_end"]["jaw_r"] != first["val_start"]["jaw_r"]
    best = torch.load(first["best_checkpoint"], map_location="cpu", weights_only=False)
    assert best["callbacks"][next(k for k in best["callbacks"] if "ModelCheckpoint" in k)]["monitor"] == "val/jaw_r"


@pytest.mark.slow
def test_resume_continues_step_optimizer_and_ema(trained, tmp_path):
    """Resumed at step 30 with the saved optimiser moments and EMA, not from scratch."""
    run = trained["run"]
    resumed = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    steps = {int(s["step"]) for s in resumed["optimizer_states"][0]["state"].values()}
    assert steps == {40}  # 30 before the restart + 10 after: Adam's step count carried over
    assert int(resumed["state_dict"]["ema.n_averaged"]) == 40
    assert trained["second"]["global_step"] == 40
    segments = trained["second"]["segments"]  # both starts, for the model card's wall time and hardware
    assert [s["steps"] for s in segments] == [[0, 30], [30, 40]] and all(
        "CPU threads" in s["hardware"] for s in segments
    )


@pytest.mark.slow
def test_a_resume_keeps_the_earlier_metrics_and_refuses_another_network(synthetic_shards, tmp_path):
    """Lightning's CSV writer deletes the metrics.csv it finds: a resumed segment writes its own."""
    from vlogger.training.run import train_motion

    sets = [*tiny_overrides(synthetic_shards, tmp_path, "csv", 4), "logging.logger=csv", "logging.media_every_steps=0"]
    sets += ["trainer.log_every_steps=1"]
    cfg = load_config(None, "train/motion.yaml", sets)
    train_motion(cfg)
    train_motion(merge(cfg, {"trainer": {"max_steps": 6}}, "test"), resume="auto")
    logs = tmp_path / "csv" / "csv"
    first, second = logs / "metrics.csv", logs / "from-step0000004" / "metrics.csv"
    steps = [{int(r["step"]) for r in csv.DictReader(f.open()) if r.get("train/loss_total")} for f in (first, second)]
    assert max(steps[0]) < 4 <= min(steps[1])
    with pytest.raises(ContractError, match=r"model\.width: 32 in .*last\.ckpt, 48 in this run"):
        train_motion(merge(cfg, {"trainer": {"max_steps": 8}, "model": {"width": 48}}, "test"), resume="auto")


@pytest.mark.slow
def test_ddp_two_cpu_ranks_see_different_windows(tmp_path):
    from vlogger.preprocessing.synthetic import make_synthetic_shards

    shards = tmp_path / "shards"  # more and longer clips than the shared fixture: room for two ranks to differ
    make_synthetic_shards(shards, clips=5, seconds=6.0, val_identities=("synth_004",), overrides=["crop.size=64"])
    sets = [f"--set={o}" for o in tiny_overrides(shards, tmp_path, "ddp", 4)]
    sets += ["--set=trainer.devices=2", "--set=trainer.strategy=ddp", "--set=debug.record_batches=true"]
    sets += ["--set=logging.logger=csv"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    exe = Path(sys.executable).parent / "vlogger"
    proc = subprocess.run([str(exe), "train", "motion", *sets], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = {}
    for rank in (0, 1):
        rows = [json.loads(x) for x in (tmp_path / "ddp" / f"seen-rank{rank}.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [0, 1, 2, 3]
        seen[rank] = {(k, s) for r in rows for k, s in zip(r["keys"], r["start"], strict=True)}
    assert seen[0] != seen[1] and len(seen[0] & seen[1]) < len(seen[0]) / 2
    val_ids = {"synth_001", "synth_004"}
    assert not any(k.split("-")[0] in val_ids for k, _ in seen[0] | seen[1])  # held out by identity


@pytest.mark.slow
def test_generate_motion_for_a_minute_of_speech(trained, tmp_path, shared_dir):
    from vlogger.cli import main

    ckpt = trained["run"] / "checkpoints" / "last.ckpt"
    image = shared_dir / "data" / "images" / "portrait_hallo6.jpg"
    audio = shared_dir / "data" / "clips" / "edtalk_pose_source2.mp4"  # 60 s of speech
    out = tmp_path / "gm"
    args = ["generate-motion", "--image", str(image), "--audio", str(audio), "--checkpoint", str(ckpt)]
    assert main([*args, "--out", str(out), "--steps", "2", "--size", "64"]) == 0
    with np.load(out / "motion.npz") as z:
        n = len(z["motion"])
        assert abs(n - 1500) <= 1 and z["expression"].shape == (n, 32) and np.isfinite(z["rotation"]).all()
    with av.open(str(out / "controls.mp4")) as c:
        assert c.streams.video[0].frames == n and len(c.streams.audio) == 1
        assert abs(float(c.duration / 1e6) - 60.0) < 0.2


def test_generate_motion_refuses_bad_inputs(tmp_path):
    from vlogger.core.errors import BadInput
    from vlogger.generation.pipeline import speech_features

    spec = default_spec()
    silent = tmp_path / "silent.wav"
    import soundfile as sf

    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(BadInput, match="silent"):
        speech_features(silent, spec)
    with pytest.raises(BadInput, match="cannot read audio"):
        speech_features(tmp_path / "missing.wav", spec)


def test_unknown_validation_identity_is_named(synthetic_shards):
    from vlogger.datasets.motion import MotionDataModule

    shards = synthetic_shards
    cfg = load_config(None, "train/motion.yaml", [f"data.shards={shards}", "data.val_identities=[nobody]"])
    with pytest.raises(ValueError, match="nobody"):
        MotionDataModule(cfg).stats()


@pytest.mark.slow
def test_generate_names_a_bad_photo_audio_or_checkpoint(trained, tmp_path, capsys, shared_dir):
    import cv2
    import soundfile as sf

    from vlogger.cli import main

    ckpt = str(trained["run"] / "checkpoints" / "last.ckpt")
    photo = cv2.imread(str(shared_dir / "data" / "images" / "portrait_hallo6.jpg"))
    cv2.imwrite(str(tmp_path / "two.jpg"), np.concatenate([photo, photo], 1))
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((256, 256, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / "one.jpg"), photo)
    speech = str(shared_dir / "data" / "audio" / "retalking_audio1.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really a wave file" * 100)
    for image, audio, video_ckpt, said, named in [
        ("two.jpg", speech, ckpt, "2 faces found", "two.jpg"),
        ("wall.png", speech, ckpt, "no face found", "wall.png"),
        ("wall.png", speech, str(tmp_path / "none.ckpt"), "none.ckpt: no such checkpoint", "none.ckpt"),
        ("one.jpg", str(tmp_path / "silent.wav"), ckpt, "silent", "silent.wav"),
        ("one.jpg", str(tmp_path / "noise.wav"), ckpt, "cannot decode audio", "noise.wav"),
    ]:
        args = ["generate", "--image", str(tmp_path / image), "--audio", audio, "--motion-checkpoint", ckpt]
        assert main([*args, "--video-checkpoint", video_ckpt, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert said in err and named in err, err
    assert not (tmp_path / "o").exists()  # nothing half-written
