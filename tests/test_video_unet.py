"""Stage 2's VideoUNet: shapes, zero-initialised controls and temporal layers, frame
independence, gradient checkpointing, and that the conditioning paths train."""

from __future__ import annotations

import pytest
import torch

from vlogger.models.video.unet import VideoUNet
from vlogger.preprocessing.run import default_spec

B, T, S = 2, 4, 64
CONFIG = {
    "channels": [16, 32, 64],
    "blocks_per_level": 1,
    "attention_levels": [2],
    "temporal_attention_levels": [1, 2],
    "head_dim": 16,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small convolutions run fastest on one thread; the machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(**overrides) -> VideoUNet:
    torch.manual_seed(0)
    return VideoUNet(**{**CONFIG, **overrides})


def make_inputs(b: int = B, t: int = T, s: int = S, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x_t": torch.randn(b, t, 3, s, s, generator=g),
        "t": torch.randint(0, 1000, (b,), generator=g),
        "reference": torch.rand(b, 3, s, s, generator=g) * 2 - 1,
        "controls": torch.rand(b, t, 14, s, s, generator=g),
    }


def randomise_zero_inits(model: VideoUNet) -> None:
    """Give every zero-initialised parameter random values, so that every path is live."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_shapes_dtypes_and_bf16():
    model = make_model().eval()
    with torch.no_grad():
        for t in (1, T):
            inp = make_inputs(t=t)
            out = model(**inp)
            assert out.shape == (B, t, 3, S, S) and out.dtype == torch.float32
            assert torch.isfinite(out).all()
        known = torch.randn(B, T, 3, S, S)
        mask = torch.zeros(B, T, 1, S, S)
        mask[:, :2] = 1
        out = model(**make_inputs(), known=known, known_mask=mask)
        assert out.shape == (B, T, 3, S, S)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(**make_inputs())
        assert out.shape == (B, T, 3, S, S) and out.dtype == torch.bfloat16
        assert torch.isfinite(out.float()).all()
    with pytest.raises(ValueError, match="known_mask"):
        model(**make_inputs(), known=known)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(**make_inputs(s=S - 2))


def test_dropping_conditions():
    model = make_model().eval()
    randomise_zero_inits(model)
    inp = make_inputs(t=2)
    drop = torch.tensor([True, False])
    with torch.no_grad():
        out = model(**inp, drop_controls=drop, drop_reference=drop)
        zeroed = {**inp, "controls": inp["controls"].clone(), "reference": inp["reference"].clone()}
        zeroed["controls"][0] = 0
        zeroed["reference"][0] = model.null_reference[:, None, None]
        torch.testing.assert_close(out, model(**zeroed), atol=1e-6, rtol=0)
        assert not torch.allclose(out[0], model(**inp)[0], atol=1e-4)


@pytest.mark.slow
def test_zero_init_then_controls_and_frames_matter_after_training():
    model = make_model()
    inp = make_inputs()
    other_controls = torch.rand_like(inp["controls"])
    late_change = inp["x_t"].clone()
    late_change[:, 3] += 1.0
    with torch.no_grad():
        base = model(**inp)
        assert torch.equal(base, model(**inp, temporal=False)), "temporal layers are not a no-op at init"
        assert torch.equal(base, model(**{**inp, "controls": other_controls})), "controls matter at init"

    # a few steps on a target that needs both the controls and the other frames
    target = inp["controls"][:, :, 10:13] + inp["x_t"].roll(1, dims=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(8):  # the zero-init output and zero convs take a few steps to open every path
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(**inp), target).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        base = model(**inp)
        assert (base - model(**{**inp, "controls": other_controls})).abs().max() > 1e-4
        moved = model(**{**inp, "x_t": late_change})
        assert (base[:, 0] - moved[:, 0]).abs().max() > 1e-5, "frame 3 does not reach frame 0"
        still = model(**inp, temporal=False)
        moved = model(**{**inp, "x_t": late_change}, temporal=False)
        assert torch.equal(still[:, 0], moved[:, 0]), "frames mix with temporal=False"
        assert not torch.allclose(base, still, atol=1e-5), "temporal layers still a no-op"


def test_frames_independent_without_temporal_layers():
    model = make_model().eval()
    randomise_zero_inits(model)
    inp = make_inputs()
    with torch.no_grad():
        together = model(**inp, temporal=False)
        for i in range(T):
            alone = model(
                x_t=inp["x_t"][:, i : i + 1],
                t=inp["t"],
                reference=inp["reference"],
                controls=inp["controls"][:, i : i + 1],
            )
            torch.testing.assert_close(together[:, i : i + 1], alone, atol=1e-5, rtol=1e-5)
        # T = 1 skips the temporal layers whatever the flag
        torch.testing.assert_close(alone, model(**{k: v[:, -1:] if v.dim() == 5 else v for k, v in inp.items()}))


def test_gradient_checkpointing_matches():
    inp = make_inputs(t=2, s=32)
    losses, grads = [], []
    for ckpt in (False, True):
        model = make_model(gradient_checkpointing=ckpt).train()
        randomise_zero_inits(model)
        loss = model(**inp).square().mean()
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=0)
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        torch.testing.assert_close(g, grads[1][name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
def test_overfits_one_sample():
    """60 Adam steps on one (x0, reference, controls) lower the x0-prediction error by half."""
    s, t = 32, 2
    model = make_model()
    g = torch.Generator().manual_seed(3)
    inp = make_inputs(b=1, t=t, s=s)
    x0 = torch.rand(1, t, 3, s, s, generator=g) * 2 - 1
    alphas = torch.cos(torch.linspace(0.05, 1.5, 1000)) ** 2  # cumulative alpha-bar, a cosine schedule

    def noisy(step: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = alphas[step].view(-1, 1, 1, 1, 1)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    eval_steps = torch.tensor([100, 400, 700, 900])
    eval_noise = torch.randn(4, t, 3, s, s, generator=g)
    cond = {"reference": inp["reference"].expand(4, -1, -1, -1), "controls": inp["controls"].expand(4, -1, -1, -1, -1)}

    def error() -> float:
        model.eval()
        with torch.no_grad():
            pred = model(noisy(eval_steps, eval_noise), eval_steps, **cond)
        model.train()
        return torch.nn.functional.mse_loss(pred, x0.expand_as(pred)).item()

    before = error()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(60):
        step = torch.randint(0, 1000, (2,), generator=g)
        pred = model(noisy(step, torch.randn(2, t, 3, s, s, generator=g)), step, **{k: v[:2] for k, v in cond.items()})
        opt.zero_grad()
        torch.nn.functional.mse_loss(pred, x0.expand_as(pred)).backward()
        opt.step()
    after = error()
    assert after < 0.5 * before, (before, after)


def test_channels_last_matches():
    model = make_model().eval()
    randomise_zero_inits(model)
    inp = make_inputs(t=2, s=32)
    with torch.no_grad():
        expected = model(**inp)
        model = model.to(memory_format=torch.channels_last)
        inp["reference"] = inp["reference"].contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model(**inp), expected, atol=1e-5, rtol=1e-4)
        # activations channels-last (what sampling does): the same function
        torch.testing.assert_close(model(**inp, memory_format=torch.channels_last), expected, atol=1e-5, rtol=1e-4)


def test_super_resolution_input_takes_the_low_resolution_frames():
    model, inputs = make_model(lowres_input=True).eval(), make_inputs()
    randomise_zero_inits(model)
    with pytest.raises(ValueError, match="super-resolution"):
        model(**inputs)
    with pytest.raises(ValueError, match="super-resolution"):
        make_model()(**inputs, lowres=torch.zeros_like(inputs["x_t"]))
    with torch.no_grad():
        a = model(**inputs, lowres=torch.zeros_like(inputs["x_t"]))
        b = model(**inputs, lowres=torch.rand_like(inputs["x_t"]))
    assert a.shape == inputs["x_t"].shape and (a - b).abs().mean() > 1e-3  # the low-res frames matter


def test_super_resolution_condition_is_the_frame_shrunk_and_upsampled():
    from vlogger.core.config import load_config
    from vlogger.training.video import VideoDiffusion

    over = ["superres={from_size: 16, noise_aug: 0.0, residual: true}", "data.size=32", "model.channels=[16,32,64]"]
    over += ["model.parts=[face, body]"]  # 14 control channels
    module = VideoDiffusion(load_config(None, "train/video.yaml", over), default_spec())
    smooth = torch.linspace(-1, 1, 32)[None, None, None, :, None].expand(1, 2, 3, 32, 32)
    low = module.degrade(smooth)
    assert low.shape == smooth.shape and (low - smooth).abs().max() < 0.05  # a ramp survives 2x down/up
    stripes = torch.ones(1, 2, 3, 32, 32)
    stripes[..., ::2, :] = -1
    assert module.degrade(stripes).abs().max() < 1e-5  # detail above 16 px Nyquist is gone


def test_residual_super_resolution_starts_at_the_upsampled_frames():
    from vlogger.core.config import load_config
    from vlogger.training.video import VideoDiffusion

    over = ["superres={from_size: 16, noise_aug: 0.0, residual: true}", "data.size=32", "model.channels=[16,32,64]"]
    over += ["model.parts=[face, body]"]  # 14 control channels
    over += ["phase=clip", "sampling.steps=3"]
    module = VideoDiffusion(load_config(None, "train/video.yaml", over), default_spec())
    for m in (module.model, module.ema.module):
        torch.nn.init.zeros_(m.out[-1].weight)
        torch.nn.init.zeros_(m.out[-1].bias)
    low = torch.rand(1, 2, 3, 16, 16) * 2 - 1
    up = module.upsample(low)
    controls = torch.rand(1, 2, 14, 32, 32)
    out = module.sample(torch.zeros(1, 3, 32, 32), controls, generator=torch.Generator().manual_seed(0), lowres=up)
    torch.testing.assert_close(out, up.clamp(-1, 1), atol=1e-4, rtol=0)  # a zero residual: bilinear exactly


def test_untrained_stage_2_samples_the_pasted_warped_reference():
    from vlogger.body.render import Controls
    from vlogger.core.config import load_config
    from vlogger.training.video import VideoDiffusion

    over = ["data.size=32", "model.channels=[16,32,64]", "phase=clip", "sampling.steps=3", "model.parts=[face, body]"]
    module = VideoDiffusion(load_config(None, "train/video.yaml", over), default_spec())
    g = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    controls = torch.rand(1, 2, 14, 32, 32, generator=g)
    controls[:, :, 13:14] = (controls[:, :, 13:14] > 0.5).float()  # a binary mask
    out = module.sample(reference, controls, generator=g)
    pasted = Controls(controls[0]).paste((reference + 1) / 2, 0.04 * 32) * 2 - 1  # the config's feather
    torch.testing.assert_close(out[0], pasted.clamp(-1, 1), atol=1e-4, rtol=0)  # zero-init residual
    assert (pasted - (Controls(controls[0]).paste((reference + 1) / 2) * 2 - 1)).abs().max() > 0.1  # not hard
    plain = VideoDiffusion(
        load_config(None, "train/video.yaml", [*over, "model.residual_over_warped=false"]), default_spec()
    )
    assert plain.sample(reference, controls, generator=g).abs().max() < 1e-4  # plain x0: the zero image


def test_control_branch_from_level_1_skips_its_full_resolution_level_and_still_sees_the_controls():
    from torch.utils.flop_counter import FlopCounterMode

    inp = make_inputs(t=2, s=16)
    flops = {}
    for level in (0, 1):
        model = make_model(control_level=level).eval()
        randomise_zero_inits(model)
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            out = model(**inp)
        flops[level] = fc.get_total_flops()
        with torch.no_grad():
            changed = model(**{**inp, "controls": torch.rand_like(inp["controls"])})
        assert out.shape == inp["x_t"].shape and (out - changed).abs().mean() > 1e-3  # the controls reach the output
    # the branch's full-resolution level (stem, ResBlock, downsampling) is gone: ~5 % of this small network
    assert flops[1] < 0.97 * flops[0], flops
    with pytest.raises(ValueError, match="control_level 3"):
        make_model(control_level=3)


def test_checkpoints_before_control_level_run_the_full_branch():
    from vlogger.training.checkpoints import CONFIG_VERSION, migrate

    cfg = {"stage": "video", "model": {"channels": [16, 32]}, "sampling": {}}
    hp = migrate({"cfg": cfg, "spec": {}, "config_version": 3}, "old.ckpt")
    assert hp["config_version"] == CONFIG_VERSION and hp["cfg"]["model"]["control_level"] == 0
    assert hp["cfg"]["sampling"]["compile"] is False
