"""SMPLify-X-style fit of SMPL-X to one clip's tracked landmarks, and its inverse (vertices).

All frames of a clip are optimised together (torch, L-BFGS): per-frame expression, jaw, head
and global orientation, the upper-body joints (spine3, neck, collars, shoulders, elbows) and a
weak-perspective camera (scale and 2D shift), per-clip betas. The data term is a
Geman-McClure-robust 2D distance of the projected SMPL-X static face landmarks and upper-body
joints to the tracked ones, weighted by tracking visibility; L2 priors keep shape, expression
and pose plausible (no VPoser: its weights are licence-gated too), and frame-to-frame
smoothness terms remove tracking jitter. A first stage solves camera, global and head
orientation only, so the second starts from a sensible alignment.

The head is fitted as a rotation in the model frame (its rotation relative to the neck then
follows from the chain below it): the face landmarks see it directly, so it does not have to
travel through five joints that share it. What stays weakly determined: under an
orthographic camera only the depth differences between landmarks reveal pitch and yaw, so
the per-clip shape can absorb a pitch offset of a degree or two.

Hands, when the clip's tracked hands (mediapipe's 21 points per hand) are given and seen on some
frame: per frame, each wrist's rotation and each hand's pose as `hands.num_components`
coefficients of the model's MANO PCA basis (hands_componentsl/r, as smplx's `use_pca`: a dozen
coefficients span natural hand shapes, and the 2D points could not pin 45 free angles: the
twist of a finger bone moves no joint). Their data term is the robust 2D distance of SMPL-X's
wrist and 15 finger joints, and of the fingertip vertices on SMPL-X's own mesh, to the tracked
points weighted by visibility; a model without SMPL-X's fingertip vertex ids (another mesh,
like the tests' synthetic one) fits the 16 points at joints and leaves the tips out. An L2
prior on the coefficients and the wrist rotations and frame-to-frame smoothness hold a hand
through the frames it is not seen. Without hands nothing of this is set up and the fit is the
one above.

The result follows the contract of `vlogger.body.params`: `rotation` is the head's rotation
in the image frame and `scale * rotation @ X + translation` places a point X of the head in
crop pixels, where X is in the head joint's frame (metres, SMPL-X template posed at rest,
rotated to image axes) and `translation` is the head joint's image position (z = 0: depth is
relative to the head, like mediapipe's). `expression` is the SMPL-X expression coefficients
followed by the jaw's axis-angle rotation. `left_hand_pose` and `right_hand_pose` (T, 45) are
the 15 finger joints' axis-angle rotations relative to the model's mean hand (smplx's forward
with `use_pca=False` and the default `flat_hand_mean=False` takes them as they are), zeros
when the clip had no hands; the wrists' rotations are in `body_pose`. A fit with hands adds
`hand_residual_px` (T, 2): the mean 2D distance of its hand points to the tracked ones, NaN
where the hand was not seen.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rodrigues

from vlogger.body.params import BODY_JOINTS, body_from_pose
from vlogger.body.smplx_model import (
    BODY_JOINT_IDS,
    FACE_POINTS,
    FORMAT_BY_POINTS,
    HAND_JOINT_IDS,
    HAND_JOINT_POINTS,
    HAND_TIPS,
    HEAD,
    IMAGE_FROM_SMPLX,
    JOINTS,
    Rig,
    SmplxModel,
    joint_rotations,
    to_image,
    with_head,
)
from vlogger.core.config import load_config

REFERENCE_SIZE = 256  # pixel weights in the config refer to a crop of this side
GROUPS = {  # optimiser groups of the config's stages -> parameters
    "camera": ("log_scale", "shift"),
    "global_orient": ("global_orient",),
    "head": ("head",),
    "body_pose": ("body_pose",),
    "jaw_pose": ("jaw_pose",),
    "expression": ("expression",),
    "betas": ("betas",),
    "hands": ("wrists", "hand_pose"),  # nothing when the clip has no hands
}
WRISTS = [JOINTS["left_wrist"] - 1, JOINTS["right_wrist"] - 1]  # index into body_pose
# Parameters are stored in steps that move the face landmarks by about a pixel of a 256-px
# crop (a face ~100 px high: 1/40 rad of head rotation or of log scale), so L-BFGS sees a
# well-conditioned problem.
_STEP = {"global_orient": 1 / 40, "head": 1 / 40, "body_pose": 1 / 40, "jaw_pose": 1 / 40, "log_scale": 1 / 40}
_STEP |= {"wrists": 1 / 40, "hand_pose": 1 / 4}
# Per-frame parameters are sums over a temporal pyramid (blocks of 1, 4, 16, ... frames up to
# the whole clip, each scaled by 1/sqrt(block)): a change shared by many frames, like a head
# pitch traded against the per-clip shape or motion held together by the smoothness terms, is
# then one step for L-BFGS instead of hundreds of small ones.
_PYRAMID = 4


class _Fit(torch.nn.Module):
    """The free parameters of one clip; `forward` projects the fitted points to crop pixels."""

    def __init__(self, model: SmplxModel, cfg: dict, n_frames: int, size: int, hands: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.size = size
        self.hands = hands is not None  # hands: (2,) 1 for a hand seen on some frame, else 0
        tri, bary = model.static_landmark_weights()
        self.tips = self.hands and model.fingertips is not None
        tips = model.fingertips.ravel() if self.tips else np.zeros(0, np.int64)
        used = np.unique(np.concatenate([tri.ravel(), tips]))
        self.rig = Rig(model, cfg["num_betas"], cfg["num_expression"], used)
        self.register_buffer("tri", torch.as_tensor(np.searchsorted(used, tri)))
        self.register_buffer("tip_ids", torch.as_tensor(np.searchsorted(used, tips)).view(-1, 5))
        self.register_buffer("bary", torch.as_tensor(bary, dtype=torch.float32))
        for key in ("free_joints", "prior_pose"):
            unknown = [j for j in cfg[key] if j not in JOINTS or not 1 <= JOINTS[j] <= 21 or j == "head"]
            if unknown:
                raise ValueError(
                    f"{key}: {unknown} are not SMPL-X body joints other than the head (spine3, neck, left_elbow, ...)"
                )
        self.free = [JOINTS[j] - 1 for j in cfg["free_joints"]]  # index into body_pose
        prior = torch.zeros(21, 3)
        for name, value in cfg["prior_pose"].items():
            prior[JOINTS[name] - 1] = torch.tensor(value, dtype=torch.float32)
        self.register_buffer("prior", prior)
        shapes = {
            "betas": (1, cfg["num_betas"]),
            "expression": (n_frames, cfg["num_expression"]),
            "jaw_pose": (n_frames, 3),
            "global_orient": (n_frames, 3),
            "head": (n_frames, 3),  # the head's rotation in the model frame, not relative to the neck
            "body_pose": (n_frames, len(self.free), 3),  # offset from the prior
            "log_scale": (n_frames,),
            "shift": (n_frames, 2),  # image position of the face landmarks' centroid, px of a 256 crop
        }
        if self.hands:
            self.register_buffer("hand_seen", hands.float()[:, None])  # a hand never seen stays the mean hand
            k = cfg["hands"]["num_components"]
            if not 1 <= k <= 45:
                raise ValueError(f"hands.num_components: {k}; SMPL-X's hand bases have 1 to 45 components")
            self.register_buffer("hand_basis", torch.as_tensor(model.hand_components[:, :k]))  # (2, K, 45)
            shapes |= {"wrists": (n_frames, 2, 3), "hand_pose": (n_frames, 2, k)}  # the person's left, right
        self.n_frames = n_frames
        self.blocks = {k: _blocks(n_frames) if k != "betas" else [1] for k in shapes}
        self.raw = torch.nn.ParameterDict()
        for key, shape in shapes.items():
            for b in self.blocks[key]:
                self.raw[f"{key}__{b}"] = torch.nn.Parameter(torch.zeros(-(-shape[0] // b), *shape[1:]))

    def params(self, name: str) -> list[torch.nn.Parameter]:
        """The pyramid's levels of `name`; none for the hands' of a fit without them."""
        return [self.raw[f"{name}__{b}"] for b in self.blocks.get(name, ())]

    def value(self, name: str) -> torch.Tensor:
        fine, *coarse = self.params(name)
        total = fine
        for b, p in zip(self.blocks[name][1:], coarse, strict=True):
            total = total + p.repeat_interleave(b, 0)[: len(fine)] / b**0.5
        return total * _STEP.get(name, 1.0)

    @torch.no_grad()
    def start_camera(self, face: torch.Tensor, face_w: torch.Tensor) -> None:
        """Per-frame scale and shift that match the spread and centre of the rest model's
        landmarks (seen frontally) to the tracked ones; frames without a face get the median."""
        for p in self.params("log_scale") + self.params("shift"):
            p.zero_()
        model = self()["face"][0, :, :2]
        w = face_w[..., None]
        n = w.sum(1).clamp_min(1)
        centre = (face * w).sum(1) / n
        spread = (((face - centre[:, None]) ** 2 * w).sum((1, 2)) / n[:, 0]).sqrt()
        model_spread = model.pow(2).sum(-1).mean().sqrt()
        seen = face_w.sum(1) >= 3
        scale = torch.where(seen, spread / model_spread, spread[seen].median() / model_spread)
        shift = torch.where(seen[:, None], centre, centre[seen].median(0).values)
        self.raw["log_scale__1"].copy_(scale.log() / _STEP["log_scale"])
        self.raw["shift__1"].copy_(shift * REFERENCE_SIZE / self.size)

    def rotations(self) -> torch.Tensor:
        """(T, 55, 3, 3) local joint rotations. The head is fitted in the model frame (the face
        sees it directly), its rotation relative to the neck follows from the chain below it."""
        n = self.n_frames
        body = self.prior.expand(n, -1, -1).clone()
        body[:, self.free] = body[:, self.free] + self.value("body_pose")
        hands = None
        if self.hands:
            body[:, WRISTS] = body[:, WRISTS] + self.value("wrists") * self.hand_seen
            hands = self.hand_pose()
        rots = joint_rotations(self.value("global_orient"), body, self.value("jaw_pose"), self.model, hands)
        return with_head(rots, self.model, batch_rodrigues(self.value("head")))

    def hand_pose(self) -> torch.Tensor:
        """(T, 2, 45) axis-angle of both hands' finger joints from their PCA coefficients."""
        return torch.einsum("tsk,skp->tsp", self.value("hand_pose"), self.hand_basis) * self.hand_seen

    def forward(self) -> dict[str, torch.Tensor]:
        rots = self.rotations()
        verts, joints, world = self.rig.pose(self.value("betas"), self.value("expression"), rots)
        face = torch.einsum("tlkc,lk->tlc", verts[:, self.tri], self.bary)
        scale = self.value("log_scale").exp()
        # the camera places the centroid of the face landmarks: rotations and expressions then
        # barely move it, which keeps them from trading off against the shift
        centroid = to_image(face.mean(1, keepdim=True), scale, torch.zeros_like(face[:, 0]))[:, 0]
        shift = torch.nn.functional.pad(self.value("shift") * self.size / REFERENCE_SIZE, (0, 1)) - centroid
        out = {
            "face": to_image(face, scale, shift),
            "body": to_image(joints[:, BODY_JOINT_IDS], scale, shift),
            "head": to_image(joints[:, HEAD : HEAD + 1], scale, shift)[:, 0],
            "head_rotation": IMAGE_FROM_SMPLX.to(world) @ world[:, HEAD],
            "scale": scale,
            "head_local": rots[:, HEAD],
        }
        if self.hands:  # (T, 2, P, 3): the points of `_hand_points`, per hand
            points = joints[:, HAND_JOINT_IDS]
            if self.tips:
                points = torch.cat([points, verts[:, self.tip_ids]], 2)
            out["hands"] = to_image(points.flatten(1, 2), scale, shift).view(*points.shape)
        return out


def _blocks(n_frames: int) -> list[int]:
    sizes = [1]
    while sizes[-1] < n_frames:
        sizes.append(sizes[-1] * _PYRAMID)
    return sizes


def _hand_points(tips: bool) -> list[int]:
    """The mediapipe hand points the fit compares, in the order of `_Fit.forward`'s."""
    return HAND_JOINT_POINTS + list(HAND_TIPS) if tips else HAND_JOINT_POINTS


def _hand_targets(hands: np.ndarray, points: list[int], n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tracked 2D hand points (T, 2, P, 2) and their weights (T, 2, P) from a (T, 2, 21, 4) track."""
    hands = np.asarray(hands, np.float32)
    if hands.shape != (n_frames, 2, 21, 4):
        raise ValueError(f"SMPL-X fit needs a ({n_frames}, 2, 21, 4) hand track (x, y, z, visibility): {hands.shape}")
    xy = hands[:, :, points, :2]
    weight = np.nan_to_num(hands[:, :, points, 3]) * np.isfinite(xy).all(-1)
    return torch.as_tensor(np.nan_to_num(xy)), torch.as_tensor(weight.astype(np.float32))


def _targets(lmk: np.ndarray, pose: np.ndarray | None, min_visibility: float):
    """Tracked 2D points and their weights: face (T, 51, 2), (T, 51); body (T, 8, 2), (T, 8)."""
    lmk = np.asarray(lmk, np.float32)
    fmt = FORMAT_BY_POINTS.get(lmk.shape[1]) if lmk.ndim == 3 else None
    if fmt is None:
        raise ValueError(f"SMPL-X fit needs (T, 478, 3) mediapipe or (T, 68, 3) iBUG landmarks, got {lmk.shape}")
    face = lmk[:, FACE_POINTS[fmt], :2]
    face_w = np.isfinite(face).all(-1).astype(np.float32)
    if not face_w.any():
        raise ValueError("no tracked face landmarks in the clip: nothing to fit SMPL-X to")
    if pose is None:
        pose = np.full((len(lmk), 33, 4), np.nan, np.float32)
    body = np.asarray(pose, np.float32)[:, list(BODY_JOINTS.values())]
    vis = np.nan_to_num(body[..., 3]) * np.isfinite(body[..., :2]).all(-1)
    body_w = np.where(vis > min_visibility, vis, 0.0).astype(np.float32)
    t = torch.as_tensor
    return t(np.nan_to_num(face)), t(face_w), t(np.nan_to_num(body[..., :2])), t(body_w)


def _robust(sq: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure of squared residuals: quadratic near zero, saturating at sigma²."""
    return sigma**2 * sq / (sq + sigma**2)


def _loss(fit: _Fit, out: dict, targets, cfg: dict) -> torch.Tensor:
    face, face_w, body, body_w, *hands = targets
    w = cfg["weights"]
    px = REFERENCE_SIZE / fit.size
    sigma = cfg["robust_sigma_px"]
    n = len(face)
    v = {k: fit.value(k) for k in fit.blocks}

    def data(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
        return (weight * _robust(((pred[..., :2] - target) * px).pow(2).sum(-1), scale)).sum() / n

    def sq(x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).sum() / n

    def step(x: torch.Tensor) -> torch.Tensor:
        return sq(x[1:] - x[:-1])

    loss = w["face"] * data(out["face"], face, face_w, sigma["face"])
    loss = loss + w["body"] * data(out["body"], body, body_w, sigma["body"])
    loss = loss + w["betas"] * v["betas"].pow(2).sum() + w["expression"] * sq(v["expression"])
    head_bend = (out["head_local"] - torch.eye(3).to(face)).pow(2).sum((1, 2)) / 2  # ~ angle² when small
    loss = loss + w["jaw"] * sq(v["jaw_pose"]) + w["pose"] * (sq(v["body_pose"]) + head_bend.sum() / n)
    if n > 1:
        loss = loss + w["smooth_pose"] * (step(v["global_orient"]) + step(v["head"]) + step(v["body_pose"]))
        loss = loss + w["smooth_expression"] * (step(v["expression"]) + step(v["jaw_pose"]))
        loss = loss + w["smooth_shift"] * step(v["shift"]) + w["smooth_scale"] * step(v["log_scale"])
    if fit.hands:
        loss = loss + w["hand"] * data(out["hands"], *hands, sigma["hand"])
        loss = loss + w["hand_pose"] * sq(v["hand_pose"]) + w["wrist"] * sq(v["wrists"])
        if n > 1:
            loss = loss + w["smooth_hand"] * (step(v["hand_pose"]) + step(v["wrists"]))
    return loss


def fit_smplx(
    lmk: np.ndarray,
    pose: np.ndarray | None,
    model: SmplxModel,
    size: int = 256,
    cfg: dict | None = None,
    hands: np.ndarray | None = None,
) -> dict:
    """Per-frame SMPL-X parameters of one clip from tracked landmarks in crop pixels.

    lmk: (T, 478, 3) mediapipe face mesh (or (T, 68, 3) iBUG points); pose: (T, 33, 4)
    mediapipe pose (x, y, z, visibility) or None; hands: (T, 2, 21, 4) hand track
    (`vlogger.core.hands`) or None; NaN marks what was not tracked. cfg is
    `load_config(None, "body/smplx.yaml")` (the default when None).
    """
    if cfg is None:
        cfg = load_config(None, "body/smplx.yaml")
    device = torch.device(cfg["device"])
    found = _targets(lmk, pose, cfg["min_visibility"])
    n = len(found[0])
    if hands is not None:
        found += _hand_targets(hands, _hand_points(model.fingertips is not None), n)
        if not found[-1].any():  # no hand seen in the clip: the fit without hands
            found = found[:4]
    fit = _Fit(model, cfg, n, size, (found[-1] > 0).any(2).any(0) if len(found) > 4 else None)
    fit.rig.to(device)
    fit.to(device)
    targets = tuple(x.to(device) for x in found)
    fit.start_camera(*targets[:2])
    for stage in cfg["stages"]:
        bad = set(stage["groups"]) - set(GROUPS)
        if bad:
            raise ValueError(f"stages: unknown parameter groups {sorted(bad)} (choose from {', '.join(GROUPS)})")
        _run_stage(fit, stage, targets, cfg)
    return _params(fit, found, pose, size, cfg)


def _run_stage(fit: _Fit, stage: dict, targets: tuple, cfg: dict) -> None:
    """L-BFGS with a strong-Wolfe line search on the stage's parameter groups."""
    params = [p for g in stage["groups"] for name in GROUPS[g] for p in fit.params(name)]
    if not params:  # a stage of the hands only, on a clip without them
        return
    opt = torch.optim.LBFGS(
        params,
        max_iter=stage["iterations"],
        history_size=stage["history"],
        line_search_fn="strong_wolfe",
        tolerance_change=1e-9,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = _loss(fit, fit(), targets, cfg)
        loss.backward()
        return loss

    opt.step(closure)


@torch.no_grad()
def _params(fit: _Fit, targets: tuple, pose, size: int, cfg: dict) -> dict:
    out = {k: v.cpu() for k, v in fit().items()}
    head = out["head"]
    face, face_w, _, _, *hands = targets
    residual, per_frame = _residual(out["face"], face, face_w)
    seen = face_w > 0
    body = out["body"] - torch.nn.functional.pad(head[:, 2:], (2, 0))[:, None]  # depth relative to the head
    if pose is None:
        visible = np.zeros(body.shape[:2], np.float32)
    else:
        visible = body_from_pose(np.asarray(pose), cfg["min_visibility"])[1]
    v = {k: fit.value(k).cpu() for k in fit.blocks}
    hand_pose = fit.hand_pose().cpu() if fit.hands else torch.zeros(len(head), 2, 45)
    params = {
        "model": "smplx",
        "basis_id": f"smplx:{fit.model.path.name}",  # what training checks against the data spec
        "size": size,
        "expression": _f32(torch.cat([v["expression"], v["jaw_pose"]], -1)),
        "rotation": _f32(out["head_rotation"]),
        "scale": _f32(out["scale"]),
        "translation": _f32(torch.nn.functional.pad(head[:, :2], (0, 1))),
        "body": _f32(body),
        "body_visible": _f32(visible),
        "residual_px": _f32(per_frame),
        "residual_p95_px": np.float32(torch.quantile(residual[seen], 0.95)),
        "model_file": fit.model.path.name,
        "betas": _f32(v["betas"][0]),
        "global_orient": _f32(v["global_orient"]),
        "body_pose": _f32(_axis_angle(fit.rotations()[:, 1:22]).reshape(len(head), -1)),
        "jaw_pose": _f32(v["jaw_pose"]),
        "left_hand_pose": _f32(hand_pose[:, 0]),
        "right_hand_pose": _f32(hand_pose[:, 1]),
    }
    if fit.hands:
        params["hand_residual_px"] = _f32(_residual(out["hands"], *hands)[1])
    return params


def _residual(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2D distances (..., P) of fitted to tracked points and their mean over the points seen
    (weight > 0), NaN where none was."""
    residual = (pred[..., :2] - target).norm(dim=-1)
    seen = weight > 0
    mean = (residual * seen).sum(-1) / seen.sum(-1).clamp_min(1)
    return residual, mean.masked_fill(~seen.any(-1), float("nan"))


def _f32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, np.float32)


def _axis_angle(rots: torch.Tensor) -> torch.Tensor:
    flat = rots.cpu().reshape(-1, 3, 3).double().numpy()
    return torch.as_tensor(Rotation.from_matrix(flat).as_rotvec(), dtype=torch.float32).view(*rots.shape[:-2], 3)


def smplx_vertices(params: dict, model: SmplxModel) -> torch.Tensor:
    """(T, V, 3) SMPL-X vertices in crop pixels from a params dict (numpy or torch values).

    The contract's keys drive the face and head: `expression` (coefficients + jaw),
    `rotation` (the head joint is re-posed so the head has exactly this rotation), `scale`
    and `translation` (the head joint's image position); the rest of the body comes from the
    model-specific `betas`, `global_orient`, `body_pose` and the hands' `left_hand_pose`,
    `right_hand_pose` (the mean hand where absent, as in params written before the hand fit).
    On a fit's own output this reproduces the fitted mesh.
    """

    def t(key: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(params[key], np.float32))

    expression, rotation, scale, translation = t("expression"), t("rotation"), t("scale"), t("translation")
    n_expr = expression.shape[1] - 3
    betas = t("betas")[None]
    rig = Rig(model, betas.shape[1], n_expr)
    body_pose = t("body_pose").view(len(expression), 21, 3)
    hands = None
    if "left_hand_pose" in params:
        hands = torch.stack([t("left_hand_pose"), t("right_hand_pose")], 1)
    rots = joint_rotations(t("global_orient"), body_pose, expression[:, n_expr:], model, hands)
    flip = IMAGE_FROM_SMPLX
    verts, joints, _ = rig.pose(betas, expression[:, :n_expr], with_head(rots, model, flip.T @ rotation))
    shift = translation - scale[:, None] * joints[:, HEAD] @ flip.T
    return to_image(verts, scale, shift)
