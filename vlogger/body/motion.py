"""The per-frame motion vector stage 1 predicts, and the statistics that normalise it.

Layout of one frame (D = E + 6 + 3 + 3·J), everything relative to a reference frame:
  [0, E)          expression coefficients minus the reference's (E = basis components used)
  [E, E+6)        head rotation residual R_refᵀ R_t in the continuous 6D form
  [E+6, E+9)      translation residual (t_t - t_ref) / s_ref in x and y, and log(s_t / s_ref)
                  (depth translation is not modelled: under the orthographic camera it only
                  shifts the z-buffer, so `from_motion` keeps the reference's)
  [E+9, D)        body joints residual (body_t - body_ref) / s_ref for the J upper-body joints
                  (0 where either frame did not see the joint)
Units are face heights (s_ref is pixels per forehead-to-chin), so the vector does not
depend on the crop size. `to_motion` and `from_motion` are inverse to float precision.

Normalisation (`motion_stats`) divides by a per-dimension std that never falls below `floor` ×
its group's typical std (RMS over expression, rotation, translation/scale or body): a dimension
that barely moves in the training clips (a second-order entry of the 6D rotation, a joint never
seen) would otherwise turn a small movement of a new clip into hundreds of standard deviations.
Training's floor (`data.std_floor`, 1) was chosen by measurement (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlogger.body.geometry import matrix_to_rot6d, rot6d_to_matrix
from vlogger.body.params import BODY_JOINTS
from vlogger.core.errors import UsageError

REFERENCE_KEYS = ("expression", "rotation", "scale", "translation", "body", "body_visible")


@dataclass(frozen=True)
class MotionLayout:
    """Slices of the motion vector, for losses that weigh face and body separately."""

    n_expression: int
    n_joints: int = len(BODY_JOINTS)

    @property
    def dim(self) -> int:
        return self.n_expression + 9 + 3 * self.n_joints

    @property
    def expression(self) -> slice:
        return slice(0, self.n_expression)

    @property
    def rotation(self) -> slice:
        return slice(self.n_expression, self.n_expression + 6)

    @property
    def translation(self) -> slice:
        return slice(self.n_expression + 6, self.n_expression + 9)

    @property
    def body(self) -> slice:
        return slice(self.n_expression + 9, self.dim)

    @property
    def face(self) -> slice:
        """Expression + head pose: the part weighted as 'face' in the stage-1 loss."""
        return slice(0, self.n_expression + 9)

    @classmethod
    def of_dim(cls, dim: int, n_joints: int = len(BODY_JOINTS)) -> MotionLayout:
        """The layout of `dim`-value motion vectors (the expression takes what the rest leaves)."""
        return cls(dim - 9 - 3 * n_joints, n_joints)

    @property
    def reference_dim(self) -> int:
        """Length of the reference vector (`reference_vector`): expression, 6D rotation, joints, visibility."""
        return self.n_expression + 6 + 4 * self.n_joints

    def split_reference(self, ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """A reference vector's parts: expression, rotation (6D), body (J, 3) in face heights
        relative to the head, and the joints' visibility (J,)."""
        e, j = self.n_expression, self.n_joints
        return {
            "expression": ref[:e],
            "rotation": ref[e : e + 6],
            "body": ref[e + 6 : e + 6 + 3 * j].reshape(j, 3),
            "visible": ref[e + 6 + 3 * j :],
        }

    @property
    def jaw(self) -> slice:
        """The first expression coefficient: the basis's largest component, the jaw opening."""
        return slice(0, 1)

    @property
    def groups(self) -> dict[str, slice]:
        """The parts normalised and reported apart; they partition the vector."""
        return {
            "expression": self.expression,
            "rotation": self.rotation,
            "translation": self.translation,
            "body": self.body,
        }

    @property
    def parts(self) -> dict[str, slice]:
        """The groups and the jaw: what stage 1 reports its loss (and benchmarks their error) over."""
        return self.groups | {"jaw": self.jaw}


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)


def reference_of(params: dict, index: int) -> dict:
    """The reference parameters (one frame) from a clip's params."""
    return {k: _t(params[k])[index] for k in REFERENCE_KEYS}


def reference_vector(ref: dict, n_expression: int) -> torch.Tensor:
    """What stage 1 is told about the reference frame: its expression, head rotation (6D) and
    the upper-body layout relative to the head in face heights, with the joints' visibility.
    (The identity shape stays out: it changes how the face looks, not how it moves.)"""
    vis = _t(ref["body_visible"])
    body = (_t(ref["body"]) - _t(ref["translation"])) / _t(ref["scale"]) * vis[:, None]
    return torch.cat([_t(ref["expression"])[:n_expression], matrix_to_rot6d(_t(ref["rotation"])), body.flatten(), vis])


def to_motion(params: dict, ref: dict, n_expression: int | None = None) -> torch.Tensor:
    """(T, D) motion vectors of a clip's params relative to the reference frame `ref`."""
    e = _t(params["expression"])
    k = e.shape[-1] if n_expression is None else n_expression
    s_ref = _t(ref["scale"])
    rot = _t(ref["rotation"]).T @ _t(params["rotation"])
    trans = (_t(params["translation"]) - _t(ref["translation"])) / s_ref
    trans[:, 2] = torch.log(_t(params["scale"]) / s_ref)
    both = (_t(params["body_visible"]) * _t(ref["body_visible"]))[..., None]
    body = (_t(params["body"]) - _t(ref["body"])) / s_ref * both
    return torch.cat([e[:, :k] - _t(ref["expression"])[:k], matrix_to_rot6d(rot), trans, body.flatten(1)], dim=1)


def from_motion(motion: torch.Tensor, ref: dict) -> dict:
    """Params (expression, rotation, scale, translation, body) of motion vectors (T, D) applied
    to the reference. Joints the reference did not see stay at the reference position."""
    lay = MotionLayout.of_dim(motion.shape[1], _t(ref["body"]).shape[0])
    ref = {k: _t(v).to(motion.device) for k, v in ref.items()}
    s_ref = ref["scale"]
    e_ref = ref["expression"]
    expr = e_ref.expand(len(motion), -1).clone()
    expr[:, : lay.n_expression] += motion[:, lay.expression]
    tr = motion[:, lay.translation]
    trans = ref["translation"] + s_ref * torch.cat([tr[:, :2], torch.zeros_like(tr[:, :1])], 1)
    body = ref["body"] + s_ref * motion[:, lay.body].reshape(len(motion), lay.n_joints, 3)
    return {
        "expression": expr,
        "rotation": ref["rotation"] @ rot6d_to_matrix(motion[:, lay.rotation]),
        "scale": s_ref * torch.exp(tr[:, 2]),
        "translation": trans,
        "body": body,
        "body_visible": ref["body_visible"].expand(len(motion), -1),
    }


@dataclass
class MotionStats:
    """Per-dimension mean and (floored) std of motion vectors over training clips: the
    normalisation stage 1 stores in its checkpoint."""

    mean: torch.Tensor
    std: torch.Tensor
    info: dict


def floored_std(std: torch.Tensor, layout: MotionLayout, floor: float, min_std: float = 1e-3) -> torch.Tensor:
    """Per-dimension std raised to at least `floor` × its group's RMS std (and `min_std`; floor 0
    is the plain per-dimension std). A group with no variation at all (RMS < min_std: say no
    joint was ever seen in training) takes its floor in its own units (face heights,
    coefficients), so nothing a new clip does there is magnified."""
    out = std.clone()
    for sl in layout.groups.values():
        rms = float(std[sl].pow(2).mean().sqrt())
        out[sl] = std[sl].clamp_min(max(floor * (rms if rms >= min_std else 1.0), min_std))
    return out


def motion_stats(clip_params: list[dict], n_expression: int, floor: float, ref_every: int = 25) -> MotionStats:
    """Statistics of motion vectors of every frame against references every `ref_every` frames,
    the way training pairs a window with a reference from the same clip; std floored per group
    (`floored_std`)."""
    vecs = []
    for p in clip_params:
        for r in range(0, len(p["expression"]), ref_every):
            vecs.append(to_motion(p, reference_of(p, r), n_expression))
    if not vecs:
        raise UsageError("no clips with parameters to compute motion statistics on")
    allv = torch.cat(vecs)
    layout = MotionLayout(n_expression, _t(clip_params[0]["body"]).shape[1])
    raw = allv.std(0)
    std = floored_std(raw, layout, floor)
    info = {"clips": len(clip_params), "vectors": len(allv), "n_expression": n_expression, "ref_every": ref_every}
    info |= {"floor": floor, "floored_dims": [int(i) for i in torch.nonzero(std > raw).flatten()]}
    return MotionStats(allv.mean(0), std, info)
