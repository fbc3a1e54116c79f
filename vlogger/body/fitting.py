"""Pick and run the configured body model on a clip's tracked landmarks (preprocessing's 3D fit)."""

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

Fitter = Callable[[np.ndarray, np.ndarray, int], dict]
MODELS = ("facemesh", "smplx")


def make_fitter(fit_cfg: dict) -> Fitter | None:
    """`fit(lmk (T,478,3), pose (T,33,4), size) -> params` for `fit.body_model`; None when off.

    Loads the model files once, so a missing basis or SMPL-X folder fails before any video.
    """
    return _fitter(fit_cfg["body_model"], fit_cfg["basis"], fit_cfg["model_path"])


@cache
def _fitter(name: str | None, basis_path: str | None, model_path: str | None) -> Fitter | None:
    if name is None:
        return None
    if name == "facemesh":
        basis = FaceBasis.load(basis_path)
        return lambda lmk, pose, size: fit_facemesh(lmk, pose, basis, size)
    if name == "smplx":
        model = load_smplx(model_path)
        cfg = load_config(None, "body/smplx.yaml")
        return lambda lmk, pose, size: fit_smplx(lmk, pose, model, size, cfg)
    raise UsageError(f"fit.body_model={name!r}: choose one of {', '.join(MODELS)} or null")


def basis_id(fit_cfg: dict) -> str | None:
    """The id of the parameter basis `fit.body_model` writes (None when fitting is off): the
    face-mesh basis hash, or the SMPL-X model file; training refuses parameters of another."""
    name = fit_cfg["body_model"]
    if name == "facemesh":
        return FaceBasis.load(fit_cfg["basis"]).basis_id
    if name == "smplx":
        return f"smplx:{load_smplx(fit_cfg['model_path']).path.name}"
    return None


def residual_scores(params: dict) -> dict:
    """Fit quality for the clip's json: mean and 95th-percentile re-projection error (crop px)."""
    res = np.asarray(params["residual_px"])
    return {"fit_residual_px": float(np.nanmean(res)), "fit_residual_p95_px": float(params["residual_p95_px"])}


@dataclass
class MeshModel:
    """What the control renderer needs of a body model: its triangles, their regions, canonical
    vertex positions, and params -> (T, V, 3) vertices in crop pixels."""

    faces: np.ndarray
    labels: np.ndarray
    canonical: np.ndarray
    vertices: Callable[[dict], torch.Tensor]


def facemesh_mesh(basis: FaceBasis) -> MeshModel:
    return MeshModel(basis.faces, basis.labels, basis.mean, lambda p: facemesh_vertices(p, basis))


def mesh_model(name: str, basis: str | None = None, model_path: str | None = None) -> MeshModel:
    """The renderable mesh of `name` ("facemesh" with its basis file, "smplx" with its folder)."""
    if name == "facemesh":
        return facemesh_mesh(FaceBasis.load(basis))
    if name == "smplx":
        m = load_smplx(model_path)
        return MeshModel(m.faces, m.labels, m.canonical, lambda p: smplx_vertices(p, m))
    raise UsageError(f"body model {name!r}: choose one of {', '.join(MODELS)}")
