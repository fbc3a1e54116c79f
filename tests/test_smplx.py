"""SMPL-X body model on a small synthetic model written in the official .npz format: loading
through `smplx.create`, posing against smplx's own forward, the landmark correspondence, and
the fitter recovering known parameters from noisy "tracked" landmarks.

Measured here (default config, 24 frames, 0.5 px tracking noise): mean reprojection error
0.61 px, head rotation error 1.94 deg mean / 3.6 max (a pitch offset of about 1 deg shared by
the clip plus about 1.3 deg of frame-to-frame scatter in pitch and yaw, which under an
orthographic camera only the landmarks' depth differences reveal), camera scale 0.56 %, head
position 1.37 px, expression RMS error 0.24 (truth RMS 0.71, correlation 0.96), jaw opening
error 0.05 rad (truth 0.13 on average).
At 1.5 px noise the landmark jitter (second difference of the error to the truth) is 4.58 px
tracked, 1.04 px fitted with smoothing and 1.69 px without.
Hands (8 frames, wrists turned and fingers posed along 12 PCA components, tips tracked, 0.5 px
noise, the right hand unseen on 3 frames): hand points re-projected within 0.64 px, PCA
coefficient RMS error 0.135 (truth RMS 0.46; the synthetic fingers are straight chains whose
bone twists move no point, so part of each coefficient is unseen), wrist error 0.28 rad (traded
against finger rotations that move the hand alike), the unseen frames' coefficients within
0.3 of the line joining their neighbours'.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import smplx
import torch
from smplx.lbs import batch_rodrigues
from smplx_synthetic import synthetic_smplx_arrays, write_synthetic_smplx

from vlogger.body.geometry import rotation_angle_deg
from vlogger.body.params import BODY_JOINTS, COMMON_KEYS
from vlogger.body.smplx_fit import fit_smplx, smplx_vertices
from vlogger.body.smplx_model import (
    BODY_JOINT_IDS,
    FACE_POINTS,
    HAND_FINGERS,
    HAND_JOINT_IDS,
    HAND_JOINT_POINTS,
    HAND_TIPS,
    HEAD,
    IMAGE_FROM_SMPLX,
    JOINTS,
    MEDIAPIPE_FOR_IBUG,
    Rig,
    joint_rotations,
    load_smplx,
)
from vlogger.body.topology import BODY, BROWS, EYES, INNER_MOUTH, LIPS, SKIN
from vlogger.core.config import load_config
from vlogger.core.hands import empty_hands

N_BETAS, N_EXPR = 10, 10
QUICK = "[{iterations: 5, history: 5, groups: [camera]}, {iterations: 10, history: 10, groups: [body_pose, hands]}]"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smplx_models")
    write_synthetic_smplx(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    return load_smplx(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    """smplx's own SMPLX module on the same file, as the independent ground truth. Its extra
    keypoints are vertex ids of the real 10 475-vertex mesh, so they are switched off here."""
    layer = smplx.create(
        str(model_dir), model_type="smplx", num_betas=N_BETAS, num_expression_coeffs=N_EXPR, use_pca=False
    )
    layer.vertex_joint_selector.extra_joints_idxs = torch.zeros(0, dtype=torch.long)
    return layer


def test_synthetic_file_has_the_official_layout(model_dir):
    with np.load(model_dir / "smplx" / "SMPLX_NEUTRAL.npz") as z:
        shapes = {k: z[k].shape for k in z.files}
    v, f = shapes["v_template"][0], shapes["f"][0]
    assert shapes["shapedirs"] == (v, 3, 400) and shapes["posedirs"] == (v, 3, 486)
    assert shapes["J_regressor"] == (55, v) and shapes["weights"] == (v, 55) and shapes["kintree_table"] == (2, 55)
    assert shapes["lmk_faces_idx"] == (51,) and shapes["lmk_bary_coords"] == (51, 3)
    assert shapes["dynamic_lmk_faces_idx"] == (79, 17) and shapes["dynamic_lmk_bary_coords"] == (79, 17, 3)
    assert shapes["hands_componentsl"] == (45, 45) and shapes["hands_meanr"] == (45,)
    assert shapes["f"] == (f, 3) and shapes["ft"] == (f, 3)


def test_load_and_renderer_topology(model_dir, model):
    assert model.path == model_dir / "smplx" / "SMPLX_NEUTRAL.npz"
    assert (model.n_betas, model.n_expression) == (300, 100)
    for where in (model_dir / "smplx", model.path):  # the folder itself or the file also work
        assert load_smplx(where).path == model.path
    n_verts = model.layer.v_template.shape[0]
    assert model.faces.shape == (len(model.labels), 3) and model.faces.max() < n_verts
    assert model.canonical.shape == (n_verts, 3) and model.canonical.min() >= 0 and model.canonical.max() <= 1
    assert {SKIN, LIPS, INNER_MOUTH, EYES, BROWS, BODY} <= set(model.labels.tolist())


def test_missing_or_wrong_model_files_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fit\.model_path"):
        load_smplx(None)
    with pytest.raises(FileNotFoundError, match=r"nowhere: is not a folder; expected .*smplx/SMPLX_NEUTRAL\.npz"):
        load_smplx(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"has no SMPL-X model file; expected .*smplx/SMPLX_NEUTRAL\.npz"):
        load_smplx(tmp_path)
    arrays = synthetic_smplx_arrays()
    del arrays["lmk_faces_idx"]
    broken = tmp_path / "broken" / "SMPLX_NEUTRAL.npz"
    broken.parent.mkdir()
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match=r"broken/SMPLX_NEUTRAL\.npz: not a readable SMPL-X model file"):
        load_smplx(broken.parent)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "SMPLX_FEMALE.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"SMPLX_FEMALE\.npz: not a readable SMPL-X model file"):
        load_smplx(tmp_path / "junk", gender="female")


def test_posing_matches_smplx_forward(model, reference):
    """Hand poses mean what smplx's forward (without PCA, around the mean hand) means by them."""
    g = torch.Generator().manual_seed(0)
    n = 3
    betas, expr = torch.randn(1, N_BETAS, generator=g), torch.randn(n, N_EXPR, generator=g)
    pose = 0.3 * torch.randn(n, 23, 3, generator=g)
    for hands in (None, 0.3 * torch.randn(n, 2, 45, generator=g)):
        out = _smplx_forward(reference, betas, expr, pose[:, 0], pose[:, 1:22], pose[:, 22], hands)
        rots = joint_rotations(pose[:, 0], pose[:, 1:22], pose[:, 22], model, hands)
        verts, joints, _ = Rig(model, N_BETAS, N_EXPR).pose(betas, expr, rots)
        torch.testing.assert_close(verts, out.vertices, atol=1e-5, rtol=0)
        torch.testing.assert_close(joints, out.joints[:, :55], atol=1e-5, rtol=0)


def test_mediapipe_correspondence_follows_the_face():
    """On the face-mesh model's mean face (x from the person's right to left, y down): the
    person's right-side iBUG points lie right of the midline, rows go brows, eyes, nose, mouth."""
    from vlogger.body.facemesh import FaceBasis

    mean = FaceBasis.load().mean
    assert len(set(MEDIAPIPE_FOR_IBUG.values())) == 51 and max(MEDIAPIPE_FOR_IBUG.values()) < 468
    pt = {i: mean[m] for i, m in MEDIAPIPE_FOR_IBUG.items()}
    mid = np.mean([pt[i][0] for i in (27, 28, 29, 30, 33, 51, 57, 62, 66)])
    right = [17, 18, 19, 20, 21, 31, 32, 36, 37, 38, 39, 40, 41, 48, 49, 50, 58, 59, 60, 61, 67]
    assert all(pt[i][0] < mid for i in right)
    assert all(pt[{17: 26, 18: 25, 19: 24, 20: 23, 21: 22}.get(i, i)][0] > mid for i in range(17, 22))
    rows = [range(17, 27), range(36, 48), range(31, 36), range(48, 68)]
    heights = [np.mean([pt[i][1] for i in r]) for r in rows]
    assert heights == sorted(heights)


def _smplx_forward(layer, betas, expr, global_orient, body_pose, jaw, hands=None):
    n = len(expr)
    zeros = torch.zeros
    hands = zeros(n, 2, 45) if hands is None else hands
    return layer(
        betas=betas, expression=expr, global_orient=global_orient, body_pose=body_pose.reshape(n, 63),
        jaw_pose=jaw, leye_pose=zeros(n, 3), reye_pose=zeros(n, 3),
        left_hand_pose=hands[:, 0], right_hand_pose=hands[:, 1], transl=zeros(n, 3),
    )  # fmt: skip


def _wave(rng: np.random.Generator, n: int, dims: int, amplitude: float, max_freq: float) -> np.ndarray:
    """Smooth random motion: sums of three sinusoids per dimension (frequency per frame)."""
    t = np.arange(n)[:, None, None]
    freq, phase = rng.uniform(0.01, max_freq, (3, dims)), rng.uniform(0, 2 * np.pi, (3, dims))
    return (amplitude / 2 * np.sin(2 * np.pi * freq * t + phase).sum(1)).astype(np.float32)


def synthetic_clip(
    model, reference, n: int, noise: float, seed: int = 0, size: int = 256, hand_components: int = 0
) -> tuple:
    """A clip posed by smplx's own forward from known parameters and projected into a crop;
    returns (lmk (n, 478, 3), pose (n, 33, 4)) as the tracker would (only the points the
    correspondence maps, the rest NaN) and the ground truth. With `hand_components`, the wrists
    turn and the fingers move along that many of the model's hand PCA components (truth
    `wrists` (n, 2, 3), `hand_coefficients` (n, 2, K), `hand_pose` (n, 2, 45)) and the truth's
    `hand_track` (n, 2, 21, 4) is the tracked hands: the points at SMPL-X joints, and the tips
    where the model has fingertip vertices."""
    rng = np.random.default_rng(seed)
    body = np.zeros((n, 21, 3), np.float32)
    for name in ("spine3", "neck", "head"):
        body[:, JOINTS[name] - 1] = _wave(rng, n, 3, 0.12, 0.05)
    for name in ("left_collar", "right_collar", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow"):
        body[:, JOINTS[name] - 1] = _wave(rng, n, 3, 0.15, 0.05)
    body[:, JOINTS["left_shoulder"] - 1, 2] -= 1.0  # arms down
    body[:, JOINTS["right_shoulder"] - 1, 2] += 1.0
    jaw = np.column_stack([np.abs(_wave(rng, n, 1, 0.25, 0.15)), _wave(rng, n, 2, 0.03, 0.05)])
    truth = {
        "betas": rng.normal(scale=0.5, size=N_BETAS).astype(np.float32),
        "expression": _wave(rng, n, N_EXPR, 1.0, 0.15) + rng.normal(scale=0.3, size=N_EXPR).astype(np.float32),
        "jaw": jaw,
        "global_orient": _wave(rng, n, 3, 0.15, 0.05),
        "scale": (420 + 15 * np.sin(np.arange(n) / 5)).astype(np.float32) * size / 256,
        "translation": np.column_stack([128 + 6 * np.sin(np.arange(n) / 4), 100 + 4 * np.cos(np.arange(n) / 6)])
        * size
        / 256,
    }
    hand_pose = None
    if hand_components:
        truth["wrists"] = _wave(rng, n, 6, 0.4, 0.05).reshape(n, 2, 3)
        body[:, [JOINTS["left_wrist"] - 1, JOINTS["right_wrist"] - 1]] = truth["wrists"]
        coefficients = _wave(rng, n, 2 * hand_components, 0.8, 0.05).reshape(n, 2, hand_components)
        truth["hand_coefficients"] = coefficients
        truth["hand_pose"] = np.einsum("tsk,skp->tsp", coefficients, model.hand_components[:, :hand_components])
        hand_pose = torch.as_tensor(truth["hand_pose"])
    t = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in truth.items()}
    with torch.no_grad():
        out = _smplx_forward(
            reference, t["betas"][None], t["expression"], t["global_orient"], torch.tensor(body), t["jaw"], hand_pose
        )
        tri, bary = model.static_landmark_weights()
        face = torch.einsum("tlkc,lk->tlc", out.vertices[:, torch.as_tensor(tri)], torch.as_tensor(bary).float())
        flip = IMAGE_FROM_SMPLX
        head = out.joints[:, HEAD] @ flip.T
        shift = torch.nn.functional.pad(t["translation"], (0, 1)) - t["scale"][:, None] * head
        face_px = t["scale"][:, None, None] * face @ flip.T + shift[:, None]
        body_px = t["scale"][:, None, None] * out.joints[:, BODY_JOINT_IDS] @ flip.T + shift[:, None]
        local = batch_rodrigues(torch.cat([t["global_orient"][:, None], torch.tensor(body)], 1).reshape(-1, 3))
        local = local.view(n, 22, 3, 3)
        world = local[:, 0]
        for joint in (3, 6, 9, 12, 15):  # pelvis -> spine1, 2, 3 -> neck -> head
            world = world @ local[:, joint]
    truth["rotation"] = (flip @ world).numpy()
    truth["face_px"] = face_px[..., :2].numpy()
    lmk = np.full((n, 478, 3), np.nan, np.float32)
    lmk[:, FACE_POINTS["mediapipe478"]] = face_px.numpy()
    lmk[:, FACE_POINTS["mediapipe478"], :2] += rng.normal(scale=noise, size=(n, 51, 2))
    pose = np.full((n, 33, 4), np.nan, np.float32)
    ids = list(BODY_JOINTS.values())
    pose[:, ids, :3] = body_px.numpy()
    pose[:, ids, :2] += rng.normal(scale=noise, size=(n, len(ids), 2))
    pose[:, ids, 3] = [0.95] * 6 + [0.1] * 2  # hips below the crop: low visibility
    if hand_components:
        track = np.full((n, 2, 21, 4), np.nan, np.float32)
        points = HAND_JOINT_POINTS + (list(HAND_TIPS) if model.fingertips is not None else [])
        with torch.no_grad():
            at = out.joints[:, HAND_JOINT_IDS]
            if model.fingertips is not None:
                at = torch.cat([at, out.vertices[:, torch.as_tensor(model.fingertips)]], 2)
            px = t["scale"][:, None, None, None] * at @ flip.T + shift[:, None, None]
        track[:, :, points, :3] = px.numpy()
        track[:, :, points, :2] += rng.normal(scale=noise, size=(n, 2, len(points), 2))
        track[..., 3] = np.isfinite(track[..., 0])
        truth["hand_track"] = track
    return lmk, pose, truth


def _fitted_landmarks(params: dict, model) -> np.ndarray:
    verts = smplx_vertices(params, model)
    tri, bary = model.static_landmark_weights()
    return torch.einsum("tlkc,lk->tlc", verts[:, torch.as_tensor(tri)], torch.as_tensor(bary).float())[..., :2].numpy()


@pytest.mark.slow
def test_fit_recovers_known_parameters(model, reference):
    n = 24
    lmk, pose, truth = synthetic_clip(model, reference, n, noise=0.5)
    params = fit_smplx(lmk, pose, model, 256, load_config(None, "body/smplx.yaml"))

    assert set(COMMON_KEYS) <= set(params) and params["model"] == "smplx"
    assert params["expression"].shape == (n, N_EXPR + 3) and params["body"].shape == (n, 8, 3)
    assert params["body_visible"].tolist() == [[1.0] * 6 + [0.0] * 2] * n
    rot_err = rotation_angle_deg(torch.tensor(params["rotation"]), torch.tensor(truth["rotation"])).numpy()
    scale_err = np.abs(params["scale"] / truth["scale"] - 1).mean()
    position_err = np.linalg.norm(params["translation"][:, :2] - truth["translation"], axis=1).mean()
    expr, jaw = params["expression"][:, :N_EXPR], params["expression"][:, N_EXPR]
    expr_err = np.sqrt(((expr - truth["expression"]) ** 2).mean())
    expr_rms = np.sqrt((truth["expression"] ** 2).mean())
    print(
        f"residual {params['residual_px'].mean():.2f} px, rotation {rot_err.mean():.2f} deg "
        f"(max {rot_err.max():.2f}), scale {scale_err:.2%}, position {position_err:.2f} px, "
        f"expression RMS error {expr_err:.3f} of {expr_rms:.3f}, "
        f"jaw opening error {np.abs(jaw - truth['jaw'][:, 0]).mean():.3f} of {truth['jaw'][:, 0].mean():.3f} rad"
    )
    assert params["residual_px"].mean() < 0.8  # the noise alone leaves ~0.55 px
    assert rot_err.mean() < 3 and rot_err.max() < 6
    assert scale_err < 0.015 and position_err < 2
    assert expr_err < 0.45 * expr_rms
    assert np.corrcoef(expr.ravel(), truth["expression"].ravel())[0, 1] > 0.9
    assert np.abs(jaw - truth["jaw"][:, 0]).mean() < 0.08 and np.corrcoef(jaw, truth["jaw"][:, 0])[0, 1] > 0.9
    # the contract's keys alone re-pose the same mesh
    own = np.linalg.norm(_fitted_landmarks(params, model) - lmk[:, FACE_POINTS["mediapipe478"], :2], axis=-1)
    np.testing.assert_allclose(own.mean(1), params["residual_px"], atol=1e-3)


@pytest.mark.slow
def test_smoothing_removes_jitter(model, reference):
    """Jitter = mean norm of the second difference over time of the landmarks' error to the
    truth (the truth's own motion left out), for the tracked input and both fits."""
    lmk, pose, truth = synthetic_clip(model, reference, 24, noise=1.5, seed=1)
    off = [f"weights.smooth_{k}=0" for k in ("pose", "expression", "shift", "scale")]
    fits = [fit_smplx(lmk, pose, model, 256, load_config(None, "body/smplx.yaml", o)) for o in ([], off)]
    tracks = [lmk[:, FACE_POINTS["mediapipe478"], :2]] + [_fitted_landmarks(p, model) for p in fits]
    jitter = [np.linalg.norm(np.diff(p - truth["face_px"], 2, axis=0), axis=-1).mean() for p in tracks]
    error = [np.linalg.norm(p - truth["face_px"], axis=-1).mean() for p in tracks]
    print(f"jitter (px) tracked {jitter[0]:.2f}, smoothed fit {jitter[1]:.2f}, unsmoothed fit {jitter[2]:.2f}")
    assert jitter[1] < 0.75 * jitter[2] and jitter[1] < 0.3 * jitter[0]
    assert error[1] < error[2] < error[0]


def _with_fingertips(model):
    """The synthetic model with a fingertip vertex per finger, as SMPL-X's own mesh has: the
    octahedron vertex of the finger's last joint that points along the finger."""
    tips = [
        [6 * JOINTS[f"{side}_{finger}3"] + (0 if side == "left" else 3) for finger in HAND_FINGERS]
        for side in ("left", "right")
    ]
    return dataclasses.replace(model, fingertips=np.array(tips))


def test_fit_without_hands_is_the_fit_before(model, reference):
    """No hand track, or one that never sees a hand: the same fit (no hand parameters are set
    up; checked bit-equal to the fit before hands were added on an 8-frame clip), with zero
    hand poses, which re-pose the same mesh as params written before them. A hand seen on some
    frames only: a finite pose there, and a hand never seen keeps the mean hand and its wrist
    the prior's rotation (the synthetic model's random pose correctives would tie them to the face)."""
    n = 4
    lmk, pose, truth = synthetic_clip(model, reference, n, noise=0.5, hand_components=6)
    cfg = load_config(None, "body/smplx.yaml", [f"stages={QUICK}", "hands.num_components=6"])
    plain = fit_smplx(lmk, pose, model, 256, cfg)
    unseen = fit_smplx(lmk, pose, model, 256, cfg, empty_hands(n))
    assert set(plain) == set(unseen) and "hand_residual_px" not in plain
    for key, value in plain.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(unseen[key]), err_msg=key)
    assert plain["left_hand_pose"].shape == plain["right_hand_pose"].shape == (n, 45)
    assert not plain["left_hand_pose"].any() and not plain["right_hand_pose"].any()
    before = {k: v for k, v in plain.items() if not k.endswith("_hand_pose")}
    torch.testing.assert_close(smplx_vertices(before, model), smplx_vertices(plain, model), atol=0, rtol=0)

    track = truth["hand_track"].copy()
    track[:, 1] = np.nan  # the right hand never seen, the left on its first and last frame
    track[1:-1, 0] = np.nan
    track[..., 3] = np.isfinite(track[..., 0])
    some = fit_smplx(lmk, pose, model, 256, cfg, track)
    assert set(some) == set(plain) | {"hand_residual_px"}
    assert np.isfinite(some["left_hand_pose"]).all() and some["left_hand_pose"].any()
    right_wrist = some["body_pose"].reshape(n, 21, 3)[:, JOINTS["right_wrist"] - 1]
    assert not some["right_hand_pose"].any() and not right_wrist.any()
    assert np.isnan(some["hand_residual_px"][:, 1]).all() and np.isfinite(some["hand_residual_px"][[0, -1], 0]).all()
    with pytest.raises(ValueError, match=r"\(4, 2, 21, 4\) hand track"):
        fit_smplx(lmk, pose, model, 256, cfg, track[:, :, :5])


@pytest.mark.slow
def test_fit_recovers_hand_pose(model, reference):
    """Wrists turned and fingers posed along 12 of the hand PCA components (the default), the
    tracked hands with their tips (the synthetic mesh given fingertip vertices, as SMPL-X's own
    has) at 0.5 px noise, the right hand unseen on frames 3-5: the fitted hands re-project
    close to the tracked points, the coefficients and wrists come near the truth, and the
    unseen frames' pose lies near its neighbours'."""
    n, gap = 8, slice(3, 6)
    tipped = _with_fingertips(model)
    lmk, pose, truth = synthetic_clip(tipped, reference, n, noise=0.5, hand_components=12)
    track = truth["hand_track"].copy()
    track[gap, 1] = np.nan
    track[..., 3] = np.isfinite(track[..., 0])
    params = fit_smplx(lmk, pose, tipped, 256, load_config(None, "body/smplx.yaml"), track)

    hand_pose = np.stack([params["left_hand_pose"], params["right_hand_pose"]], 1)
    coefficients = np.einsum("tsp,skp->tsk", hand_pose, tipped.hand_components[:, :12])
    seen = np.ones((n, 2), bool)
    seen[gap, 1] = False
    residual = params["hand_residual_px"]
    error = np.sqrt(((coefficients - truth["hand_coefficients"]) ** 2).mean(-1))
    wrists = params["body_pose"].reshape(n, 21, 3)[:, [JOINTS["left_wrist"] - 1, JOINTS["right_wrist"] - 1]]
    wrist_error = np.linalg.norm(wrists - truth["wrists"], axis=-1)
    truth_rms = np.sqrt((truth["hand_coefficients"] ** 2).mean())
    print(
        f"hand residual {np.nanmean(residual):.2f} px, coefficient RMS error {error[seen].mean():.3f} of "
        f"{truth_rms:.3f}, wrist error {wrist_error[seen].mean():.3f} rad, unseen frames {error[~seen].mean():.3f}"
    )
    assert np.isnan(residual[~seen]).all() and np.nanmean(residual) < 1.0  # the noise alone leaves ~0.6 px
    assert error[seen].mean() < 0.4 * truth_rms and wrist_error[seen].mean() < 0.4
    assert np.isfinite(hand_pose).all()
    between = np.linspace(coefficients[2, 1], coefficients[6, 1], 5)[1:-1]  # the gap's neighbours, joined
    assert np.abs(coefficients[gap, 1] - between).max() < 0.3
