"""SMPL-X as vlogger's second body model, through the `smplx` package.

The model files are licence-gated (https://smpl-x.is.tue.mpg.de), so vlogger never ships or
downloads them: the user points `fit.model_path` at the folder they downloaded. This module
loads them, says which SMPL-X points the tracked landmarks correspond to, poses the model
batched over frames (also on a subset of vertices, so fitting costs the same for the real
10 475-vertex mesh as for a small one), and gives the control renderer its triangles,
region labels and canonical coordinates.

Frames: SMPL-X is y up, z out of the face, x to the person's left. The image frame of
`vlogger.body.params` is x right, y down, z away from the camera, so a model point X is seen
at `scale * IMAGE_FROM_SMPLX @ X + t` (orthographic; a person with zero global orientation
faces the camera, their left on the image's right).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from smplx.vertex_ids import vertex_ids

from vlogger.body.params import BODY_JOINTS
from vlogger.body.topology import BODY, BROWS, EYES, INNER_MOUTH, LIPS, SKIN

N_JOINTS = 55  # pelvis, 21 body joints, jaw, 2 eyes, 2 x 15 finger joints
N_STATIC_LANDMARKS = 51  # iBUG-68 points 17..67 (brows, nose, eyes, mouth), in that order
JOINTS: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES[:N_JOINTS])}
HEAD, NECK = JOINTS["head"], JOINTS["neck"]

# the contract's upper-body joints (mediapipe names) have the same names in SMPL-X, and
# both mean the person's own left/right: mediapipe pose 11 "left_shoulder" <-> SMPL-X 16
BODY_JOINT_IDS = [JOINTS[name] for name in BODY_JOINTS]

# mediapipe's 21 hand points per hand (the person's left, then right: `vlogger.core.hands`): the
# wrist, then per finger (thumb, index, middle, ring, pinky) three joints and the tip. SMPL-X's
# joints for the first four of each finger are its wrist and finger joints 1-3 (the thumb's
# CMC, MCP and IP joints are thumb1-3); a tip is a vertex of the mesh (`SmplxModel.fingertips`).
HAND_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HAND_TIPS = (4, 8, 12, 16, 20)  # mediapipe index of each finger's tip
HAND_JOINT_POINTS = [p for p in range(21) if p not in HAND_TIPS]  # the 16 points at SMPL-X joints
HAND_JOINT_IDS = [
    [JOINTS[f"{side}_wrist"]] + [JOINTS[f"{side}_{finger}{k}"] for finger in HAND_FINGERS for k in (1, 2, 3)]
    for side in ("left", "right")
]  # (2, 16) SMPL-X joint of each point in HAND_JOINT_POINTS
HAND_POSE = {"left": JOINTS["left_index1"], "right": JOINTS["right_index1"]}  # first of each hand's 15 joints
N_VERTICES = 10_475  # the real SMPL-X mesh, whose fingertip vertex ids smplx ships

IMAGE_FROM_SMPLX = torch.diag(torch.tensor([1.0, -1.0, -1.0]))

# mediapipe face-mesh index for each of iBUG-68 points 17..67 (SMPL-X's 51 static landmarks).
# Chosen by hand on mediapipe's mesh topology (its named contours: brows, eyes, lips,
# nose midline) and checked by drawing both on real portraits: eye corners and lid points
# are the mesh's own eye-contour vertices; lip points sit on the outer/inner lip contours at
# the iBUG spacing (cupid's bow peaks 37/267 for iBUG 50/52, lower lip at thirds between
# corner and centre); brows use mediapipe's upper brow contour; the nose bridge runs from
# 168 (between the eyes) to the tip (1) at thirds; the nostril points are the alar base
# (98/327), the nostril middles (97/326) and the subnasale (2). Person's right = image left
# in both layouts (iBUG 36 = mediapipe 33, the right eye's outer corner).
MEDIAPIPE_FOR_IBUG: dict[int, int] = {
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107,  # right brow, outer to inner
    22: 336, 23: 296, 24: 334, 25: 293, 26: 300,  # left brow, inner to outer
    27: 168, 28: 197, 29: 5, 30: 1,  # nose bridge, top to tip
    31: 98, 32: 97, 33: 2, 34: 326, 35: 327,  # nostrils, right to left
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,  # right eye, from the outer corner
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,  # left eye, from the inner corner
    48: 61, 49: 39, 50: 37, 51: 0, 52: 267, 53: 269, 54: 291,  # outer upper lip
    55: 321, 56: 314, 57: 17, 58: 84, 59: 91,  # outer lower lip, left to right
    60: 78, 61: 81, 62: 13, 63: 311, 64: 308, 65: 402, 66: 14, 67: 178,  # inner lips
}  # fmt: skip

# tracked face index of each static landmark, per landmark format (vlogger.core.landmarks.FORMATS)
FACE_POINTS: dict[str, list[int]] = {
    "mediapipe478": [MEDIAPIPE_FOR_IBUG[i] for i in range(17, 68)],
    "fa68": list(range(17, 68)),
}
FORMAT_BY_POINTS = {478: "mediapipe478", 68: "fa68"}

# positions in the 51 static landmarks (iBUG index - 17) of the contours used for labels
_OUTER_LIP = list(range(31, 43))
_INNER_LIP = list(range(43, 51))
_EYES = (list(range(19, 25)), list(range(25, 31)))
_BROWS = (list(range(0, 5)), list(range(5, 10)))
_HEAD_JOINTS = (NECK, HEAD, JOINTS["jaw"])
_EYE_JOINTS = (JOINTS["left_eye_smplhf"], JOINTS["right_eye_smplhf"])


@dataclass
class SmplxModel:
    """A loaded SMPL-X model and what the renderer needs: faces (F, 3) int64, labels (F,)
    into `vlogger.body.topology.REGIONS`, canonical (V, 3) template in [0, 1]^3; the fit's hand
    bases: `hand_components` (2, 45, 45) the file's hands_componentsl/r (MANO's PCA of the 15
    finger joints' axis-angle pose, rows by decreasing variance) and `fingertips` (2, 5) the
    tip vertex of each finger (thumb to pinky, left hand then right), None for a mesh other than
    SMPL-X's own 10 475 vertices, whose ids smplx ships."""

    layer: torch.nn.Module  # smplx.SMPLX, loaded with all shape and expression components
    path: Path
    faces: np.ndarray
    labels: np.ndarray
    canonical: np.ndarray
    hand_components: np.ndarray
    fingertips: np.ndarray | None = None

    @property
    def n_betas(self) -> int:
        return int(self.layer.shapedirs.shape[-1])

    @property
    def n_expression(self) -> int:
        return int(self.layer.expr_dirs.shape[-1])

    def static_landmark_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertex ids (51, 3) and barycentric weights (51, 3) of the static face landmarks."""
        tri = self.layer.faces_tensor[self.layer.lmk_faces_idx]
        return tri.cpu().numpy(), self.layer.lmk_bary_coords.cpu().numpy()


def model_file(model_path: str | Path | None, gender: str = "neutral") -> Path:
    """The SMPL-X file for `model_path` (a file, or a folder holding it directly or in smplx/)."""
    name = f"SMPLX_{gender.upper()}"
    hint = "download it from https://smpl-x.is.tue.mpg.de (registration and licence needed)"
    if model_path is None:
        raise FileNotFoundError(
            f"SMPL-X needs its model files: set fit.model_path (--model-path) to the folder holding "
            f"smplx/{name}.npz; {hint}"
        )
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    candidates = [path / "smplx" / f"{name}.{ext}" for ext in ("npz", "pkl")]
    candidates += [path / f"{name}.{ext}" for ext in ("npz", "pkl")]
    found = [c for c in candidates if c.is_file()]
    if found:
        return found[0]
    state = "is not a folder" if not path.exists() else "has no SMPL-X model file"
    raise FileNotFoundError(
        f"{path}: {state}; expected {path / 'smplx' / name}.npz (or {name}.npz in the folder itself); {hint}"
    )


def load_smplx(model_path: str | Path | None, gender: str = "neutral") -> SmplxModel:
    """Load SMPL-X with `smplx.create`, failing with the folder and the expected file named."""
    import smplx

    path = model_file(model_path, gender)
    if not path.name.upper().startswith("SMPLX_") or path.suffix not in (".npz", ".pkl"):
        raise ValueError(f"{path}: SMPL-X model files are named SMPLX_<GENDER>.npz (or .pkl)")
    try:
        layer = smplx.create(
            str(path),
            model_type="smplx",
            gender=gender,
            ext=path.suffix[1:],
            num_betas=300,
            num_expression_coeffs=100,
            use_pca=False,
            num_pca_comps=45,  # all of the hand bases, kept (np_*_hand_components) for the fit
            use_face_contour=False,
        )
    except Exception as e:  # a truncated download, another model's file, a missing key
        raise ValueError(f"{path}: not a readable SMPL-X model file ({type(e).__name__}: {e})") from e
    shapes = {
        "J_regressor": (tuple(layer.J_regressor.shape[:1]), (N_JOINTS,)),
        "weights": (tuple(layer.lbs_weights.shape[1:]), (N_JOINTS,)),
        "lmk_faces_idx": (tuple(layer.lmk_faces_idx.shape), (N_STATIC_LANDMARKS,)),
        "posedirs": (tuple(layer.posedirs.shape[:1]), ((N_JOINTS - 1) * 9,)),
    }
    for key, (got, want) in shapes.items():
        if got != want:
            raise ValueError(f"{path}: {key} has shape {got} where SMPL-X has {want}: not an SMPL-X model file")
    layer.requires_grad_(False)
    faces = layer.faces_tensor.cpu().numpy().astype(np.int64)
    template = layer.v_template.cpu().numpy() @ IMAGE_FROM_SMPLX.numpy().T
    components = np.stack([layer.np_left_hand_components, layer.np_right_hand_components]).astype(np.float32)
    if components.shape != (2, 45, 45):
        raise ValueError(f"{path}: hands_componentsl/r have shape {components.shape[1:]} where SMPL-X has (45, 45)")
    tips = None
    if len(layer.v_template) == N_VERTICES:
        tips = np.array([[vertex_ids["smplx"][f"{s}{f}"] for f in HAND_FINGERS] for s in "lr"], np.int64)
    labels = np.zeros(len(faces), np.int64)
    model = SmplxModel(layer, path, faces, labels, _canonical(template), components, tips)
    model.labels = region_labels(model)
    return model


def _canonical(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    return ((points - lo) / np.maximum(hi - lo, 1e-9)).astype(np.float32)


def region_labels(model: SmplxModel) -> np.ndarray:
    """Approximate region label per triangle, from skinning and the static face landmarks.

    Triangles skinned mostly to the neck, head or jaw are skin, to the eyeball joints eyes,
    the rest body (clothing; hands included). On the front of the face, in a frontal view of
    the template: inside the inner-lip contour is inner mouth, between it and the outer lip
    contour lips, inside an eye contour eyes, and within a brow's half-width (7% of the
    outer-eye-corner distance) of a brow polyline brows. No SMPL-X segmentation file is
    needed, so it works for any SMPL-X-format mesh.
    """
    layer = model.layer
    verts = layer.v_template.cpu().numpy()
    faces = model.faces
    weights = layer.lbs_weights.cpu().numpy()[faces].sum(1)  # (F, 55)
    part = weights.argmax(1)
    labels = np.where(np.isin(part, _HEAD_JOINTS), SKIN, BODY)
    labels[np.isin(part, _EYE_JOINTS)] = EYES

    tri_ids, bary = model.static_landmark_weights()
    lmk = np.einsum("lkc,lk->lc", verts[tri_ids], bary)
    corners = verts[faces]
    centre = corners.mean(1)
    normal_z = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])[:, 2]
    eye_span = np.linalg.norm(lmk[19] - lmk[28])  # iBUG 36 to 45
    front = (labels == SKIN) & (normal_z > 0) & (centre[:, 2] > lmk[:, 2].min() - 0.3 * eye_span)
    xy = centre[:, :2]
    inner = _inside(xy, lmk[_INNER_LIP, :2])
    labels[front & _inside(xy, lmk[_OUTER_LIP, :2]) & ~inner] = LIPS
    labels[front & inner] = INNER_MOUTH
    for eye in _EYES:
        labels[front & _inside(xy, lmk[eye, :2])] = EYES
    for brow in _BROWS:
        labels[front & (_polyline_distance(xy, lmk[brow, :2]) < 0.07 * eye_span)] = BROWS
    return labels.astype(np.int64)


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of (N, 2) points against a closed (M, 2) polygon."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    px, py = points[:, None, 0], points[:, None, 1]
    crosses = (a[:, 1] > py) != (b[:, 1] > py)
    x_at = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1])
    return (crosses & (px < x_at)).sum(1) % 2 == 1


def _polyline_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of (N, 2) points to an open (M, 2) polyline."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(1)


def joint_rotations(
    global_orient: torch.Tensor,
    body_pose: torch.Tensor,
    jaw_pose: torch.Tensor,
    model: SmplxModel,
    hand_pose: torch.Tensor | None = None,
):
    """(T, 55, 3, 3) local joint rotations from axis-angle global (T, 3), body (T, 21, 3) and jaw
    (T, 3) poses; eyes at rest. `hand_pose` (T, 2, 45): the left and right hand's 15 joints
    relative to the model's mean (relaxed) hand, smplx's `left/right_hand_pose` without PCA
    (None: the mean hand)."""
    n = len(global_orient)
    full = torch.zeros(n, N_JOINTS, 3, dtype=global_orient.dtype, device=global_orient.device)
    full[:, 0] = global_orient
    full[:, 1:22] = body_pose
    full[:, 22] = jaw_pose
    if hand_pose is not None:
        for k, first in enumerate(HAND_POSE.values()):
            full[:, first : first + 15] = hand_pose[:, k].reshape(n, 15, 3)
    full = full + model.layer.pose_mean.view(N_JOINTS, 3).to(full)
    return batch_rodrigues(full.reshape(-1, 3)).view(n, N_JOINTS, 3, 3)


def world_rotation(rots: torch.Tensor, model: SmplxModel, joint: int) -> torch.Tensor:
    """(T, 3, 3) rotation of `joint` in the model frame: the product down its kinematic chain."""
    parents = model.layer.parents.tolist()
    out = rots[:, joint]
    while parents[joint] >= 0:
        joint = parents[joint]
        out = rots[:, joint] @ out
    return out


def with_head(rots: torch.Tensor, model: SmplxModel, head: torch.Tensor) -> torch.Tensor:
    """Local rotations (T, 55, 3, 3) with the head's set so that it ends up at `head` (T, 3, 3)
    in the model frame, whatever the joints below it do."""
    local = world_rotation(rots, model, NECK).transpose(1, 2) @ head
    return torch.cat([rots[:, :HEAD], local[:, None], rots[:, HEAD + 1 :]], 1)


class Rig:
    """SMPL-X's blend shapes and skinning restricted to some vertices and to the first
    `n_betas` / `n_expression` components, batched over frames.

    Joints come from the regressor applied to the blend shapes once, here, so posing a few
    landmark vertices is exact and independent of the mesh size.
    """

    def __init__(self, model: SmplxModel, n_betas: int, n_expression: int, vertices: np.ndarray | None = None):
        if n_betas > model.n_betas or n_expression > model.n_expression:
            raise ValueError(
                f"{model.path}: has {model.n_betas} shape and {model.n_expression} expression components, "
                f"{n_betas} and {n_expression} asked for"
            )
        layer = model.layer
        dirs = torch.cat([layer.shapedirs[..., :n_betas], layer.expr_dirs[..., :n_expression]], -1)
        regressor = layer.J_regressor
        self.template, self.dirs, self.posedirs, self.weights = (
            layer.v_template,
            dirs,
            layer.posedirs,
            layer.lbs_weights,
        )
        if vertices is not None:
            ids = torch.as_tensor(vertices).long()
            self.template, self.dirs, self.weights = self.template[ids], self.dirs[ids], self.weights[ids]
            posedirs = layer.posedirs.view(len(layer.posedirs), -1, 3)
            self.posedirs = posedirs[:, ids].reshape(len(posedirs), -1)
        self.joint_template = regressor @ layer.v_template
        self.joint_dirs = torch.einsum("jv,vck->jck", regressor, dirs)
        self.parents = layer.parents

    def pose(
        self, betas: torch.Tensor, expression: torch.Tensor, rots: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Posed vertices (T, S, 3), joints (T, 55, 3) and joint world rotations (T, 55, 3, 3),
        model frame, from betas (1 or T, B), expression (T, E), local rotations (T, 55, 3, 3)."""
        n = len(rots)
        coeffs = torch.cat([betas.expand(n, -1), expression], -1)
        shaped = self.template + torch.einsum("tk,vck->tvc", coeffs, self.dirs)
        joints = self.joint_template + torch.einsum("tk,jck->tjc", coeffs, self.joint_dirs)
        eye = torch.eye(3, dtype=rots.dtype, device=rots.device)
        posed = shaped + ((rots[:, 1:] - eye).reshape(n, -1) @ self.posedirs).view(n, -1, 3)
        joints, rel = batch_rigid_transform(rots, joints, self.parents, dtype=rots.dtype)
        skin = torch.einsum("vj,tjab->tvab", self.weights, rel)
        verts = (skin[..., :3, :3] @ posed[..., None])[..., 0] + skin[..., :3, 3]
        return verts, joints, rel[..., :3, :3]

    def to(self, device: torch.device | str) -> Rig:
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, key, value.to(device))
        return self


def to_image(points: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Model-frame points (T, N, 3) to crop pixels: scale (T,) · IMAGE_FROM_SMPLX @ X + shift (T, 3)."""
    flip = IMAGE_FROM_SMPLX.to(points)
    return scale[:, None, None] * points @ flip.T + shift[:, None, :]
