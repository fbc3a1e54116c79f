"""The default, offline body model: a linear 3D face model built on mediapipe's 478-point mesh.

A frame's mesh is `scale · R @ (identity + Σ_k e_k · B_k) + t` (orthographic, crop pixels):
per-clip identity (the neutral shape, in a canonical frame where the face is frontal and
forehead-to-chin is 1), per-frame similarity pose (R, scale, t) and expression
coefficients e in a basis B learned from data by PCA (`fit_basis`), saved as a versioned
file (`FaceBasis`) that preprocessing, training and inference load.

Fitting is closed form (similarity alignment on rigid points, then projection onto the
basis), so a clip costs milliseconds per frame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlogger.body.geometry import apply_similarity, invert_similarity, similarity_align
from vlogger.body.params import body_from_pose
from vlogger.core import landmarks
from vlogger.core.basis_file import read_basis_file

FORMAT = "vlogger-facemesh-basis"
FORMAT_VERSION = 1
N_POINTS = 478
DEFAULT_BASIS = Path(__file__).parent / "data" / "facemesh_basis_v1.npz"

# Points that move with the skull, not with expression: forehead, nose bridge and tip,
# temples, cheekbones, eye corners. Rigid alignment uses only these.
RIGID_POINTS = [
    10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 234, 454, 127, 356, 93, 323, 33, 133, 362, 263,
    116, 345, 50, 280, 101, 330, 108, 337, 67, 297, 109, 338, 21, 251, 162, 389, 54, 284, 103, 332,
]  # fmt: skip


@dataclass
class FaceBasis:
    """Mean shape, expression components and mesh topology of the face-mesh model."""

    mean: np.ndarray  # (478, 3) canonical frontal face, forehead-to-chin = 1
    components: np.ndarray  # (K, 478, 3), orthonormal as flat vectors
    stddev: np.ndarray  # (K,) coefficient standard deviation in the training data
    explained: np.ndarray  # (K,) fraction of expression variance per component
    faces: np.ndarray  # (F, 3) triangles (empty until a topology is attached)
    labels: np.ndarray  # (F,) region label per triangle (vlogger.body.topology.REGIONS)
    info: dict = field(default_factory=dict)  # what it was fitted on

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def basis_id(self) -> str:
        """Content hash: params.npz records it so training refuses parameters of another basis."""
        h = hashlib.sha256(self.mean.astype(np.float32).tobytes())
        h.update(self.components.astype(np.float32).tobytes())
        return h.hexdigest()[:12]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            format=FORMAT,
            format_version=FORMAT_VERSION,
            mean=self.mean.astype(np.float32),
            components=self.components.astype(np.float32),
            stddev=self.stddev.astype(np.float32),
            explained=self.explained.astype(np.float32),
            faces=self.faces.astype(np.int64),
            labels=self.labels.astype(np.int64),
            info=json.dumps(self.info),
        )
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> FaceBasis:
        """Load a basis file (default: the one shipped with the package), checking its format."""
        path = Path(path) if path else DEFAULT_BASIS
        keys = ("mean", "components", "stddev", "explained", "faces", "labels")
        hint = "no face-mesh basis file (make one with `vlogger body fit-basis SHARDS`)"
        arrays, info = read_basis_file(path, FORMAT, FORMAT_VERSION, keys, hint)
        return cls(**arrays, info=info)

    def truncated(self, k: int) -> FaceBasis:
        """The first k components (fewer coefficients for a smaller motion vector)."""
        return FaceBasis(
            self.mean, self.components[:k], self.stddev[:k], self.explained[:k], self.faces, self.labels, self.info
        )


def _t(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float32) if isinstance(x, np.ndarray) else x, dtype=torch.float32)


def frontal_frame(mesh: torch.Tensor) -> torch.Tensor:
    """A canonical frame for one (478, 3) mesh: centred on the rigid points, forehead-to-chin 1,
    x from the right cheek to the left, y down the face, z = x × y (away from the camera)."""
    p = landmarks.FORMATS["mediapipe478"]
    x = mesh[p["cheek_left"]] - mesh[p["cheek_right"]]
    y = mesh[p["chin"]] - mesh[p["forehead"]]
    x = x / x.norm()
    y = y - (y @ x) * x
    y = y / y.norm()
    axes = torch.stack([x, y, torch.cross(x, y, dim=0)])  # rows: the new axes
    centred = mesh - mesh[RIGID_POINTS].mean(0)
    out = centred @ axes.T
    return out / (out[p["chin"]] - out[p["forehead"]]).norm()


def align_to(lmk: torch.Tensor, target: torch.Tensor, points: Sequence[int] | None = RIGID_POINTS):
    """Similarity pose of every frame (T, 478, 3) against a canonical target; returns s, R, t
    (image = s R X + t) and the frames brought into the canonical frame."""
    idx = list(range(N_POINTS)) if points is None else list(points)
    s, r, t = similarity_align(target[idx].expand(len(lmk), -1, -1), lmk[:, idx])
    return s, r, t, invert_similarity(lmk, s, r, t)


def rigid_motions(shape: torch.Tensor) -> torch.Tensor:
    """(7, 478·3) orthonormal infinitesimal similarity motions of a shape: 3 rotations,
    3 translations, 1 scaling."""
    rots = [torch.cross(torch.eye(3)[i].expand_as(shape), shape, dim=1) for i in range(3)]
    moves = [torch.eye(3)[i].expand_as(shape) for i in range(3)]
    q, _ = torch.linalg.qr(torch.stack([*rots, *moves, shape]).reshape(7, -1).T)
    return q.T


def fit_basis(clips: Iterable[np.ndarray], n_components: int = 32, iterations: int = 4) -> FaceBasis:
    """PCA expression basis from tracked clips (each (T, 478, 3)), identity removed per clip.

    Generalised Procrustes on the rigid points gives the canonical mean; each clip's mean
    aligned shape is its identity, and what remains frame by frame is expression.
    """
    clips = [_t(c) for c in clips if len(c)]
    if not clips:
        raise ValueError("no clips with landmarks to fit a basis on")
    allf = torch.cat(clips)
    if torch.isnan(allf).any():
        raise ValueError("landmarks contain NaN: fit the basis on preprocessed (interpolated) clips")
    mean = frontal_frame(allf[0])
    for _ in range(iterations):
        mean = frontal_frame(align_to(allf, mean)[3].mean(0))
    residuals = []
    for c in clips:
        aligned = align_to(c, mean)[3]
        residuals.append((aligned - aligned.mean(0)).reshape(len(c), -1))
    rigid = rigid_motions(mean).double()
    d = torch.cat(residuals).double()
    d = d - (d @ rigid.T) @ rigid  # expression must not contain pose: the fit could not tell them apart
    _, sig, vt = torch.linalg.svd(d, full_matrices=False)
    var = sig.pow(2) / max(len(d) - 1, 1)
    k = min(n_components, len(var))
    comps = vt[:k].float()
    coeffs = d.float() @ comps.T
    # the sign of a component is arbitrary: make mouth opening a positive coefficient
    mouth = torch.as_tensor(landmarks.mouth_opening(allf.numpy(), "mediapipe478"))
    corr = [np.corrcoef(coeffs[:, j].numpy(), mouth.numpy())[0, 1] for j in range(k)]
    signs = torch.tensor([1.0 if c >= 0 or np.isnan(c) else -1.0 for c in corr])
    comps = comps * signs[:, None]
    return FaceBasis(
        mean=mean.numpy(),
        components=comps.reshape(k, N_POINTS, 3).numpy(),
        stddev=(coeffs * signs).std(0).numpy(),
        explained=(var[:k] / var.sum()).float().numpy(),
        faces=np.zeros((0, 3), np.int64),
        labels=np.zeros((0,), np.int64),
        info={"clips": len(clips), "frames": len(allf), "components": k},
    )


def expression_shape(identity: torch.Tensor, expression: torch.Tensor, basis: FaceBasis) -> torch.Tensor:
    """Canonical mesh per frame: identity (478, 3) + expression (T, K) · components."""
    comps = _t(basis.components[: expression.shape[-1]]).to(expression.device)
    return identity + torch.einsum("tk,kvc->tvc", expression, comps)


def facemesh_vertices(params: dict, basis: FaceBasis) -> torch.Tensor:
    """(T, 478, 3) mesh in crop pixels from a params dict (numpy or torch values)."""
    expr = _t(params["expression"])
    shape = expression_shape(_t(params["identity"]).to(expr.device), expr, basis)
    return apply_similarity(shape, _t(params["scale"]), _t(params["rotation"]), _t(params["translation"]))


def fit_facemesh(
    lmk: np.ndarray, pose: np.ndarray | None, basis: FaceBasis, size: int, ridge: float = 1e-5, refine: int = 2
) -> dict:
    """Per-frame parameters of one clip (T, 478, 3 tracked landmarks in crop pixels).

    Identity is the clip's mean aligned shape (for one image: that image's shape, with zero
    expression); expression is the ridge projection of each frame's remainder onto the basis;
    the pose is then refined against the model's own shape on all points.
    """
    x = _t(lmk)
    if x.ndim != 3 or x.shape[1:] != (N_POINTS, 3):
        raise ValueError(f"face-mesh fit needs (T, {N_POINTS}, 3) landmarks, got {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError("landmarks contain NaN (interpolate tracking gaps before fitting)")
    mean = _t(basis.mean)
    comps = _t(basis.components).reshape(basis.n_components, -1)
    shrink = 1.0 / (1.0 + ridge / _t(basis.stddev).clamp_min(1e-6).pow(2))
    s, r, t, aligned = align_to(x, mean)
    for it in range(refine + 1):
        identity = aligned.mean(0)
        expr = ((aligned - identity).reshape(len(x), -1) @ comps.T) * shrink
        if it == refine:
            break
        model = expression_shape(identity, expr, basis)
        s, r, t = similarity_align(model, x)
        aligned = invert_similarity(x, s, r, t)
    verts = apply_similarity(expression_shape(identity, expr, basis), s, r, t)
    residual = (verts[..., :2] - x[..., :2]).norm(dim=-1)
    params = {
        "model": "facemesh",
        "basis_id": basis.basis_id,
        "size": size,
        "identity": identity.numpy(),
        "expression": expr.numpy(),
        "rotation": r.numpy(),
        "scale": s.numpy(),
        "translation": t.numpy(),
        "residual_px": residual.mean(1).numpy(),
        "residual_p95_px": np.float32(torch.quantile(residual.flatten(), 0.95)),
    }
    if pose is not None:
        params["body"], params["body_visible"] = body_from_pose(np.asarray(pose))
    else:
        params["body"] = np.zeros((len(x), 8, 3), np.float32)
        params["body_visible"] = np.zeros((len(x), 8), np.float32)
    return params


def jaw_report(lmk: np.ndarray, basis, first: int = 4) -> dict:
    """Correlation of the first components' coefficients with the inner-lip gap (all frames pooled,
    each clip's identity removed as in fitting): shows the jaw lives in the first components."""
    aligned = align_to(_t(lmk), _t(basis.mean))[3]
    coeffs = (aligned - aligned.mean(0)).reshape(len(lmk), -1) @ _t(basis.components[:first]).reshape(first, -1).T
    mouth = landmarks.mouth_opening(lmk, "mediapipe478")
    return {f"pc{j + 1}": round(float(np.corrcoef(coeffs[:, j].numpy(), mouth)[0, 1]), 3) for j in range(first)}
