"""FID and FVD offline: Frechet closed forms, the FID Inception in the official file format, a stand-in I3D."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from vlogger.evaluation.fid import make_fid
from vlogger.evaluation.frechet import frechet_distance, mean_cov
from vlogger.evaluation.fvd import FVD, split_clips, to_uint8
from vlogger.evaluation.inception import FIDInceptionV3, load_fid_inception
from vlogger.zoo import MissingWeights

# Keys and shapes of pt_inception-2015-12-05-6726825d.pth as pytorch-fid defines them: its `fid_inception_v3()`
# loads the file strictly into torchvision's Inception3(num_classes=1008, aux_logits=False) with FIDInceptionA/C/E
# blocks (mseitzer/pytorch-fid src/pytorch_fid/inception.py; pytorch/vision torchvision/models/inception.py).
OFFICIAL_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_mean": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
_A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
_B = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
_C = ["branch1x1", *(f"branch7x7_{i}" for i in (1, 2, 3)), *(f"branch7x7dbl_{i}" for i in range(1, 6)), "branch_pool"]
_D = ["branch3x3_1", "branch3x3_2", *(f"branch7x7x3_{i}" for i in range(1, 5))]
_E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b"]
_E += ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
_MIXED = {"5b": _A, "5c": _A, "5d": _A, "6a": _B, "6b": _C, "6c": _C, "6d": _C, "6e": _C, "7a": _D, "7b": _E, "7c": _E}
_CONVS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
_CONVS += [f"Mixed_{block}.{name}" for block, names in _MIXED.items() for name in names]
_PER_CONV = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")
OFFICIAL_KEYS = {f"{conv}.{key}" for conv in _CONVS for key in _PER_CONV} | {"fc.weight", "fc.bias"}
# torchvision documents 27,161,264 parameters for Inception3(1000 classes, aux head); without the aux head
# (conv0 768->128 1x1 + BN, conv1 128->768 5x5 + BN, fc 768->1000) and with 1008 classes instead of 1000:
AUX_PARAMS = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768 + 768 * 1000 + 1000
OFFICIAL_PARAMS = 27_161_264 - AUX_PARAMS + 8 * (2048 + 1)


def _closed_form(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """FD of Gaussians whose covariances share eigenvectors, given those eigenvalues s1, s2."""
    return float(((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum())


def test_frechet_diagonal_and_commuting_covariances():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = _closed_form(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    full1, full2 = q @ np.diag(s1) @ q.T, q @ np.diag(s2) @ q.T
    got = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(full1), torch.from_numpy(mu2), full2)
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, full1, mu1, full1) == pytest.approx(0, abs=1e-10)


def test_frechet_from_large_samples():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, -1.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([0.3, 2.0, 1.5])
    n = 200_000
    x = mu1 + rng.normal(size=(n, 3)) * np.sqrt(s1)
    y = mu2 + rng.normal(size=(n, 3)) * np.sqrt(s2)
    stats = [mean_cov(n, z.sum(0), z.T @ z, ddof=1) for z in (x, y)]
    assert frechet_distance(*stats[0], *stats[1]) == pytest.approx(_closed_form(mu1, s1, mu2, s2), abs=0.02)


def test_frechet_is_zero_for_identical_rank_deficient_sets():
    """Fewer samples than features: the zero eigenvalues must not turn into sqrt(rounding noise)."""
    x = np.random.default_rng(4).normal(0.5, 0.2, size=(5, 512))
    mu, cov = mean_cov(5, x.sum(0), x.T @ x, ddof=1)
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-9 * np.trace(cov)


class _Features(nn.Module):
    """Identity 'network', so torchmetrics' FID sees chosen features."""

    num_features = 8

    def forward(self, x: Tensor) -> Tensor:
        return x


def test_frechet_matches_torchmetrics_fid():
    gen = torch.Generator().manual_seed(2)
    real = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    fake = (
        0.7
        * torch.randn(64, 8, generator=gen, dtype=torch.float64)
        @ torch.randn(8, 8, generator=gen, dtype=torch.float64)
        + 0.3
    )
    fid = FrechetInceptionDistance(feature=_Features())
    fid.update(real, real=True)
    fid.update(fake, real=False)
    stats = [mean_cov(64, z.sum(0), z.T @ z, ddof=1) for z in (real, fake)]
    assert frechet_distance(*stats[0], *stats[1]) == pytest.approx(float(fid.compute()), rel=1e-6)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory) -> tuple:
    """A weights file in the official format (random weights scaled so features are O(1)), and its model."""
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("zoo") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.mark.slow
def test_inception_matches_the_official_file_format(inception_file, tmp_path):
    path, source = inception_file
    state = torch.load(path, weights_only=True)
    assert {k for k in state if not k.endswith("num_batches_tracked")} == OFFICIAL_KEYS
    for key, shape in OFFICIAL_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert sum(p.numel() for p in source.parameters()) == OFFICIAL_PARAMS == 23_850_960
    # a file saved before BatchNorm had num_batches_tracked must load strictly too
    old = tmp_path / "old.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, old)
    images = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8)
    expected = source(images)
    assert expected.shape == (2, 2048) and expected.dtype == torch.float32
    for file in (path, old):
        model = load_fid_inception(file)
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        torch.testing.assert_close(model(images), expected)
    torch.testing.assert_close(model(images.float() / 255), expected)
    assert not model.train().training


@pytest.mark.slow
def test_fid_near_zero_for_identical_sets_and_larger_for_darker_ones(inception_file):
    path, _ = inception_file
    gen = torch.Generator().manual_seed(3)
    base = torch.rand(4, 3, 1, 1, generator=gen) * 0.5 + torch.rand(4, 3, 40, 40, generator=gen) * 0.3
    images = (base * 255).to(torch.uint8)
    fid = make_fid(path, reset_real_features=False)
    fid.train()
    assert not fid.inception.training
    fid.update(images, real=True)
    fid.update(images, real=False)
    same = float(fid.compute())
    fid.reset()
    fid.update(images // 2, real=False)
    darker = float(fid.compute())
    assert abs(same) < 1e-6 * darker


class _StandInI3D(nn.Module):
    """Same call as StyleGAN-V's I3D TorchScript and 400-d output; refuses any other calling convention."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(9, 400)

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> Tensor:
        if x.dtype != torch.uint8 or x.shape[1] != 3 or not (rescale and resize and return_features):
            raise RuntimeError("not StyleGAN-V's FVD call: uint8 (N, 3, T, H, W), rescale/resize/return_features")
        v = x.float() / 127.5 - 1
        motion = (v[:, :, 1:] - v[:, :, :-1]).abs().mean((2, 3, 4))
        return torch.tanh(self.proj(torch.cat([v.mean((2, 3, 4)), v.std((2, 3, 4)), motion], 1)))


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("zoo") / "i3d_torchscript.pt"
    with warnings.catch_warnings():  # deprecated in torch 2.13, but the official I3D only exists as TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_StandInI3D()).save(str(path))
    return path


def _videos(seed: int, n: int = 8, frames: int = 16) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, frames, 3, 12, 12), dtype=torch.uint8, generator=gen)


def test_fvd_zero_for_identical_and_positive_for_different_clips(i3d_file):
    real = _videos(0)
    fvd = FVD(i3d_file)
    fvd.update(real, real=True)
    fvd.update(real.float() / 255, real=False)  # float frames are quantised back to the same uint8
    assert abs(float(fvd.compute())) < 1e-6  # rank-deficient: 8 clips, 400 features
    fvd.reset()
    fvd.update(real, real=True)
    fvd.update(real // 3, real=False)
    assert float(fvd.compute()) > 0.1
    fvd.train()
    assert not fvd.detector.training
    with pytest.raises(ValueError, match="split_clips"):
        fvd.update(_videos(1, frames=10), real=True)


def test_fvd_states_are_sums_that_merge(i3d_file):
    real, fake = _videos(2), _videos(3) // 2
    halves, whole = [FVD(i3d_file), FVD(i3d_file)], FVD(i3d_file)
    for metric, part in zip(halves, (slice(0, 3), slice(3, None)), strict=True):
        metric.update(real[part], real=True)
        metric.update(fake[part], real=False)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    halves[0].merge_state(halves[1])
    for name in whole._defaults:
        torch.testing.assert_close(getattr(halves[0], name), getattr(whole, name))
    torch.testing.assert_close(halves[0].compute(), whole.compute())


def test_clip_helpers():
    video = torch.arange(37 * 3 * 2 * 2).reshape(37, 3, 2, 2)
    clips = split_clips(video)
    assert clips.shape == (2, 16, 3, 2, 2) and torch.equal(clips[1, 0], video[16])
    frames = torch.tensor([0.0, 0.5 / 255, 0.4 / 255, 1.0, 1.2])
    assert to_uint8(frames).tolist() == [0, 1, 0, 255, 255]


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VLOGGER_HOME", str(tmp_path))
    monkeypatch.delenv("VLOGGER_ZOO_REGISTRY", raising=False)
    with pytest.raises(MissingWeights, match="vlogger zoo fetch fid_inception_v3"):
        load_fid_inception()
    with pytest.raises(MissingWeights, match="vlogger zoo fetch i3d_torchscript"):
        FVD()


def _pytorch_fid_formula(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's `calculate_frechet_distance` (scipy sqrtm of the product), as papers compute it."""
    from scipy import linalg

    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def test_frechet_matches_the_scipy_sqrtm_formula():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(600, 64))
    b = rng.normal(size=(500, 64)) @ (np.eye(64) + 0.3 * rng.normal(size=(64, 64))) + 0.5
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    ours, ref = frechet_distance(*stats[0], *stats[1]), _pytorch_fid_formula(*stats[0], *stats[1])
    assert ours == pytest.approx(ref, rel=1e-9)


def test_fvd_samples_one_seeded_clip_per_video_or_every_clip():
    from vlogger.core.errors import UsageError
    from vlogger.evaluation.fvd import clip_starts

    one = clip_starts(100, 16, "random", 0, "a.mp4")
    assert len(one) == 1 and 0 <= one[0] <= 84 and one == clip_starts(100, 16, "random", 0, "a.mp4")
    starts = {clip_starts(100, 16, "random", s, k)[0] for s in range(3) for k in ("a.mp4", "b.mp4", "c.mp4")}
    assert len(starts) > 3  # the offset moves with the seed and the video, not always the start
    assert clip_starts(100, 16, "all", 0, "a.mp4") == [0, 16, 32, 48, 64, 80]
    assert clip_starts(15, 16, "random", 0, "a.mp4") == []
    with pytest.raises(UsageError, match=r"fvd\.sampling"):
        clip_starts(100, 16, "first", 0, "a.mp4")


def test_frechet_scores_below_2048_samples_carry_a_warning():
    from vlogger.evaluation.runner import sample_warnings

    warned = sample_warnings(
        {
            "fid": 3.0,
            "fid_n_samples": 4000,
            "fid_n_reference": 4000,
            "fvd": 9.0,
            "fvd_n_samples": 12,
            "fvd_n_reference": 12,
        }
    )
    assert len(warned) == 1 and warned[0].startswith("fvd from 12 samples")
    assert sample_warnings({"jitter": 1.0}) == []
