"""The body models behind one interface: fit a clip or photo, render the mesh, carry the model's
own parameters.

Preprocessing fits with `make_fitter`; training renders with `load_body(...).mesh`; generation
and reconstruction use all of it. The data contract's keys (expression, rotation, scale,
translation, body joints) are what stage 1 predicts for every model; each model adds its own
(face-mesh: the identity shape; SMPL-X: betas and the body pose), which `BodyModel.drive` takes
from the reference frame for motion that stage 1 made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from vlogger.body.facemesh import FaceBasis, facemesh_vertices, fit_facemesh
from vlogger.body.smplx_fit import fit_smplx, smplx_vertices
from vlogger.body.smplx_model import load_smplx
from vlogger.core.config import load_config
from vlogger.core.errors import UsageError

Fitter = Callable[..., dict]  # (lmk, pose, size, hands=None) -> params, as `BodyModel.fit`
MODELS = ("facemesh", "smplx")


@dataclass
class MeshModel:
    """What the control renderer needs of a body model: its triangles, their regions, canonical
    vertex positions, and params -> (T, V, 3) vertices in crop pixels."""

    faces: np.ndarray
    labels: np.ndarray
    canonical: np.ndarray
    vertices: Callable[[dict], torch.Tensor]


@dataclass(frozen=True)
class BodyModel:
    """One body model with its files loaded: its fit, its mesh, and its own parameter keys."""

    name: str
    basis_id: str  # what the data contract records (face-mesh basis hash, SMPL-X model file)
    fit: Fitter  # (lmk (T,478,3), pose (T,33,4), size, hands (T,2,21,4) or None) -> params; SMPL-X fits the hands
    mesh: MeshModel
    per_clip: tuple[str, ...]  # the model's own values that hold for the whole clip
    per_frame: tuple[str, ...]  # the model's own per-frame values stage 1 does not predict

    def drive(self, params: dict, reference: dict) -> dict:
        """Contract params of T frames (e.g. stage 1's) made renderable: the model's own values
        from the one-frame `reference` params, per-frame ones held at the reference's."""
        n = len(params["expression"])
        out = {k: np.asarray(v) for k, v in params.items()}
        out |= {k: reference[k] for k in self.per_clip}
        out |= {k: np.repeat(np.asarray(reference[k])[:1], n, 0) for k in self.per_frame}
        return out | {"size": reference["size"], "basis_id": self.basis_id}


@cache
def load_body(name: str, basis: str | None = None, model_path: str | None = None) -> BodyModel:
    """`name` with its files: "facemesh" with its basis file (None: shipped), "smplx" with the
    folder holding SMPLX_NEUTRAL.npz. Loads once, so a missing file fails before any video."""
    if name == "facemesh":
        fb = FaceBasis.load(basis)
        mesh = MeshModel(fb.faces, fb.labels, fb.mean, lambda p: facemesh_vertices(p, fb))

        def fit(lmk: np.ndarray, pose: np.ndarray, size: int, hands: np.ndarray | None = None) -> dict:
            return fit_facemesh(lmk, pose, fb, size)

        return BodyModel(name, fb.basis_id, fit, mesh, ("identity",), ())
    if name == "smplx":
        m = load_smplx(model_path)
        cfg = load_config(None, "body/smplx.yaml")
        mesh = MeshModel(m.faces, m.labels, m.canonical, lambda p: smplx_vertices(p, m))

        def fit_body(lmk: np.ndarray, pose: np.ndarray, size: int, hands: np.ndarray | None = None) -> dict:
            return fit_smplx(lmk, pose, m, size, cfg, hands)

        return BodyModel(
            name, f"smplx:{m.path.name}", fit_body, mesh, ("betas", "model_file"), ("global_orient", "body_pose")
        )
    raise UsageError(f"body model {name!r}: choose one of {', '.join(MODELS)}")


def make_fitter(fit_cfg: dict) -> Fitter | None:
    """The fit of `fit.body_model` (None when fitting is off)."""
    name = fit_cfg["body_model"]
    return None if name is None else load_body(name, fit_cfg["basis"], fit_cfg["model_path"]).fit


def basis_id(fit_cfg: dict) -> str | None:
    """The id of the parameter basis `fit.body_model` writes (None when fitting is off): the
    face-mesh basis hash, or the SMPL-X model file; training refuses parameters of another."""
    name = fit_cfg["body_model"]
    return None if name is None else load_body(name, fit_cfg["basis"], fit_cfg["model_path"]).basis_id


def residual_scores(params: dict) -> dict:
    """Fit quality for the clip's json: mean and 95th-percentile re-projection error (crop px)."""
    res = np.asarray(params["residual_px"])
    return {"fit_residual_px": float(np.nanmean(res)), "fit_residual_p95_px": float(params["residual_p95_px"])}
