"""The default face-mesh body model: basis file, fitting (synthetic and real), motion vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlogger.body.facemesh import (
    DEFAULT_BASIS,
    FaceBasis,
    facemesh_vertices,
    fit_basis,
    fit_facemesh,
    jaw_report,
)
from vlogger.body.geometry import rotation_angle_deg
from vlogger.body.motion import MotionLayout, from_motion, motion_stats, reference_of, to_motion
from vlogger.body.synthetic import synthetic_clip
from vlogger.core import landmarks
from vlogger.core.errors import BadInput
from vlogger.datasets.shards import all_shard_urls, clip_arrays


@pytest.fixture(scope="module")
def basis() -> FaceBasis:
    return FaceBasis.load()


@pytest.fixture(scope="module")
def real_clips(real_shards) -> list[dict]:
    out, _ = real_shards
    return list(clip_arrays(all_shard_urls(out), ["lmk.npy", "pose.npy", "params.npz"]))


def test_shipped_basis_is_versioned_and_complete(basis, tmp_path):
    assert basis.n_components == 32 and basis.mean.shape == (478, 3)
    assert basis.faces.shape == (898, 3) and len(basis.labels) == 898
    flat = basis.components.reshape(32, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(32), atol=1e-4)
    assert basis.explained[0] > basis.explained[5] > 0
    path = basis.save(tmp_path / "b.npz")
    assert FaceBasis.load(path).basis_id == basis.basis_id
    np.savez(tmp_path / "bad.npz", mean=basis.mean)
    with pytest.raises(BadInput, match="not a vlogger-facemesh-basis"):
        FaceBasis.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="vlogger body fit-basis"):
        FaceBasis.load(tmp_path / "missing.npz")
    assert DEFAULT_BASIS.is_file()


def test_fit_recovers_known_parameters(basis):
    """Measured: noise-free vertices 0.02 px, relative head rotation 0.1°; with 0.5 px noise
    0.15 px vertex error and the first four coefficients within ~7 % of their spread."""
    verts, expr, rot, scale = synthetic_clip(basis)
    g = torch.Generator().manual_seed(1)
    for noise, vert_tol, coef_tol in [(0.0, 0.05, 0.01), (0.5, 0.3, 0.15)]:
        obs = (verts + noise * torch.randn(verts.shape, generator=g)).numpy()
        p = fit_facemesh(obs, None, basis, 256)
        assert (facemesh_vertices(p, basis) - verts).norm(dim=-1).mean() < vert_tol
        r = torch.as_tensor(p["rotation"])
        assert rotation_angle_deg(r[0].T @ r, rot[0].T @ rot).max() < 0.4  # pose relative to frame 0
        assert (torch.as_tensor(p["scale"]) / scale - 1).abs().max() < 0.01
        # a clip's identity absorbs its mean expression, so coefficients come back centred
        err = (torch.as_tensor(p["expression"]) - (expr - expr.mean(0))).abs() / torch.as_tensor(basis.stddev)
        assert err[:, :4].mean() < coef_tol


def test_fit_refuses_bad_landmarks(basis):
    with pytest.raises(ValueError, match="478"):
        fit_facemesh(np.zeros((5, 68, 3), np.float32), None, basis, 256)
    lmk = synthetic_clip(basis, frames=4)[0].numpy()
    lmk[2, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_facemesh(lmk, None, basis, 256)


def test_one_image_fit_is_its_own_identity(basis):
    verts = synthetic_clip(basis, frames=1)[0]
    p = fit_facemesh(verts.numpy(), None, basis, 256)
    assert np.abs(p["expression"]).max() < 1e-5
    assert (facemesh_vertices(p, basis) - verts).norm(dim=-1).max() < 0.01


@pytest.mark.shared
def test_real_clips_reproject_within_a_pixel(real_clips, basis):
    """Every real clip, those the basis never saw (edtalk, upperbody_kim) included."""
    seen = set(basis.info["keys"])
    held_out = [c for c in real_clips if c["key"] not in seen]
    assert len(real_clips) == 11 and len(held_out) >= 4
    for c in real_clips:
        q = c["json"]["quality"]
        assert c["json"]["body_model"] == "facemesh"
        assert q["fit_residual_px"] < 1.0 and q["fit_residual_p95_px"] < 2.5, (c["key"], q)
        p = c["params.npz"]
        assert p["basis_id"] == basis.basis_id and p["expression"].shape == (len(c["lmk.npy"]), 32)
        verts = facemesh_vertices(p, basis).numpy()
        err = np.linalg.norm(verts[..., :2] - c["lmk.npy"][..., :2], axis=-1)
        np.testing.assert_allclose(err.mean(), q["fit_residual_px"], rtol=1e-3)


@pytest.mark.shared
def test_jaw_lives_in_the_first_component(real_clips, basis):
    lmk = np.concatenate([c["lmk.npy"] for c in real_clips])
    assert jaw_report(lmk, basis)["pc1"] > 0.7
    for c in real_clips:  # per clip too, the fitted first coefficient follows the inner-lip gap
        mouth = landmarks.mouth_opening(c["lmk.npy"], "mediapipe478")
        assert np.corrcoef(c["params.npz"]["expression"][:, 0], mouth)[0, 1] > 0.6, c["key"]


@pytest.mark.shared
def test_basis_refit_from_shards_matches_shipped(real_clips, basis):
    """`fit-basis` is deterministic: the same seven clips give the shipped file's components."""
    seen = set(basis.info["keys"])
    refit = fit_basis([c["lmk.npy"] for c in real_clips if c["key"] in seen], 32)
    cos = np.abs((refit.components[:4] * basis.components[:4]).sum((1, 2)))
    assert (cos > 0.99).all(), cos


@pytest.mark.shared
def test_motion_vector_round_trip(real_clips, basis):
    p = real_clips[0]["params.npz"]
    ref = reference_of(p, 7)
    m = to_motion(p, ref)
    lay = MotionLayout(32)
    assert m.shape == (len(p["expression"]), lay.dim)
    assert m[7].abs()[lay.expression].max() < 1e-6 and m[7][lay.translation].abs().max() < 1e-5
    back = from_motion(m, ref)
    rebuilt = facemesh_vertices({**back, "identity": p["identity"]}, basis)
    # the image plane is exact; depth keeps the reference's offset (orthographic: z only orders)
    assert (rebuilt - facemesh_vertices(p, basis))[..., :2].norm(dim=-1).max() < 1e-2
    both = (p["body_visible"] * p["body_visible"][7])[..., None] > 0
    np.testing.assert_allclose(np.where(both, back["body"].numpy(), 0), np.where(both, p["body"], 0), atol=1e-3)


@pytest.mark.shared
def test_motion_stats_floor_only_near_still_dimensions(real_clips):
    params = [c["params.npz"] for c in real_clips]
    plain, floored = motion_stats(params, 32, 0.0), motion_stats(params, 32, 0.3)
    assert floored.std[0] > floored.std[20]  # the jaw moves more than a late component
    torch.testing.assert_close(floored.mean, plain.mean)
    for sl in MotionLayout(32).groups.values():
        raised = floored.std[sl] > plain.std[sl]
        if not raised.any():
            continue
        floor = floored.std[sl][raised]  # one value per group: 0.3 x its RMS std
        torch.testing.assert_close(floor, floor[:1].expand_as(floor))
        assert float(floor[0]) == pytest.approx(0.3 * float(plain.std[sl].pow(2).mean().sqrt()), rel=0.01)
        assert (plain.std[sl][~raised] >= floor[0]).all()  # only the dims below it were raised
    # real clips do have near-still dimensions: the 6D rotation's second-order entries, unseen joints
    assert floored.info["floored_dims"] and floored.info["floored_dims"] != plain.info["floored_dims"]
