"""The per-frame motion vector stage 1 predicts, and the statistics that normalise it.

Layout of one frame (D = E + 6 + 3 + 3·J), everything relative to a reference frame:
  [0, E)          expression coefficients minus the reference's (E = basis components used)
  [E, E+6)        head rotation residual R_refᵀ R_t in the continuous 6D form
  [E+6, E+9)      translation residual (t_t - t_ref) / s_ref in x and y, and log(s_t / s_ref)
                  (depth translation is not modelled: under the orthographic camera it only
                  shifts the z-buffer, so `from_motion` keeps the reference's)
  [E+9, B)        body joints residual (body_t - body_ref) / s_ref for the J upper-body joints
                  (0 where either frame did not see the joint); B = E + 9 + 3·J ends the face
                  and body, all a model of the legacy parts (face, body) has
With hands in the model's parts (K = hand-basis components per hand; left hand, then right):
  2               seen: 1 where the hand's wrist and middle knuckle were tracked
  2 × 3           wrist x, y relative to the reference's head, over s_ref, and log(palm length / s_ref)
  2 × K           the hand's shape: its `hands.hand_pose` in the hand basis (`hand_basis.HandBasis`)
                  (all 0 for an unseen hand)
With eyes: 2 × 2 gaze (yaw, pitch per eye, radians, relative to the head) and 2 eyelid apertures,
absolute (not relative to the reference: they already are the head's).
Units are face heights (s_ref is pixels per forehead-to-chin), so the vector does not
depend on the crop size. `to_motion` and `from_motion` are inverse to float precision.

Normalisation (`motion_stats`) divides by a per-dimension std that never falls below `floor` ×
its group's typical std (RMS over expression, rotation, translation/scale, body or a group of
the hands and eyes): a dimension
that barely moves in the training clips (a second-order entry of the 6D rotation, a joint never
seen) would otherwise turn a small movement of a new clip into hundreds of standard deviations.
Training's floor (`data.std_floor`, 1) was chosen by measurement (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vlogger.body.geometry import matrix_to_rot6d, rot6d_to_matrix
from vlogger.body.hand_basis import HandBasis
from vlogger.body.hands import WRIST, hand_pose, hand_seen, palm_length
from vlogger.body.params import BODY_JOINTS, PART_KEYS
from vlogger.core.errors import UsageError

REFERENCE_KEYS = ("expression", "rotation", "scale", "translation", "body", "body_visible")
HAND_PLACE = 3  # per hand: wrist x, y and log palm length
EYE_DIMS = 6  # gaze yaw and pitch per eye, eyelid aperture per eye


@dataclass(frozen=True)
class MotionLayout:
    """Slices of the motion vector, for losses that weigh its parts separately. `hand_components`
    > 0 puts the hands in (with `hand_basis`, needed to encode and decode them), `eyes` gaze and
    blinks."""

    n_expression: int
    n_joints: int = len(BODY_JOINTS)
    hand_components: int = 0
    eyes: bool = False
    hand_basis: HandBasis | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_parts(
        cls, n_expression: int, parts: tuple[str, ...], hand_components: int, hand_basis: HandBasis | None = None
    ) -> MotionLayout:
        """The layout of a model of `parts` (a data spec's `parts`, or a model's)."""
        k = hand_components if "hands" in parts else 0
        return cls(n_expression, hand_components=k, eyes="eyes" in parts, hand_basis=hand_basis if k else None)

    @property
    def model_parts(self) -> tuple[str, ...]:
        """The data spec's parts this vector carries."""
        return ("face", "body") + ("hands",) * self.hands + ("eyes",) * self.eyes

    @property
    def hands(self) -> bool:
        return self.hand_components > 0

    @property
    def base_dim(self) -> int:
        """Expression, head pose and body: the whole vector of a face-and-body model."""
        return self.n_expression + 9 + 3 * self.n_joints

    @property
    def hand_dim(self) -> int:
        return 2 * (1 + HAND_PLACE + self.hand_components) if self.hands else 0

    @property
    def extra_dim(self) -> int:
        """Hands and eyes: the values after the face and body, in the motion and reference vectors."""
        return self.hand_dim + EYE_DIMS * self.eyes

    @property
    def dim(self) -> int:
        return self.base_dim + self.extra_dim

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
        return slice(self.n_expression + 9, self.base_dim)

    @property
    def hand_visible(self) -> slice:
        return slice(self.base_dim, self.base_dim + 2 * self.hands)

    @property
    def hand_place(self) -> slice:
        start = self.hand_visible.stop
        return slice(start, start + 2 * HAND_PLACE * self.hands)

    @property
    def hand_shape(self) -> slice:
        start = self.hand_place.stop
        return slice(start, start + 2 * self.hand_components)

    @property
    def gaze(self) -> slice:
        start = self.base_dim + self.hand_dim
        return slice(start, start + 4 * self.eyes)

    @property
    def eyelid(self) -> slice:
        return slice(self.gaze.stop, self.gaze.stop + 2 * self.eyes)

    @property
    def face(self) -> slice:
        """Expression + head pose: the part weighted as 'face' in the stage-1 loss."""
        return slice(0, self.n_expression + 9)

    @classmethod
    def of_dim(cls, dim: int, n_joints: int = len(BODY_JOINTS)) -> MotionLayout:
        """The face-and-body layout of `dim`-value motion vectors (the expression takes what the
        rest leaves)."""
        return cls(dim - 9 - 3 * n_joints, n_joints)

    @property
    def reference_dim(self) -> int:
        """Length of the reference vector (`reference_vector`): expression, 6D rotation, joints,
        visibility, then the reference's own hands and eyes as the motion vector codes them."""
        return self.n_expression + 6 + 4 * self.n_joints + self.extra_dim

    def split_reference(self, ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """A reference vector's face and body: expression, rotation (6D), body (J, 3) in face
        heights relative to the head, and the joints' visibility (J,)."""
        e, j = self.n_expression, self.n_joints
        return {
            "expression": ref[:e],
            "rotation": ref[e : e + 6],
            "body": ref[e + 6 : e + 6 + 3 * j].reshape(j, 3),
            "visible": ref[e + 6 + 3 * j : e + 6 + 4 * j],
        }

    @property
    def jaw(self) -> slice:
        """The first expression coefficient: the basis's largest component, the jaw opening."""
        return slice(0, 1)

    @property
    def groups(self) -> dict[str, slice]:
        """The parts normalised and reported apart; they partition the vector."""
        out = {"expression": self.expression, "rotation": self.rotation, "translation": self.translation}
        out["body"] = self.body
        if self.hands:
            out |= {"hand_visible": self.hand_visible, "hand_place": self.hand_place, "hand_shape": self.hand_shape}
        if self.eyes:
            out |= {"gaze": self.gaze, "eyelid": self.eyelid}
        return out

    @property
    def parts(self) -> dict[str, slice]:
        """The groups and the jaw: what stage 1 reports its loss (and benchmarks their error) over."""
        return self.groups | {"jaw": self.jaw}


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)


def reference_of(params: dict, index: int) -> dict:
    """The reference parameters (one frame) from a clip's params, its hands and eyes included
    where the params carry them."""
    keys = REFERENCE_KEYS + tuple(k for part in ("hands", "eyes") for k in PART_KEYS[part] if k in params)
    return {k: _t(params[k])[index] for k in keys}


def _extra(params: dict, ref: dict, layout: MotionLayout) -> torch.Tensor:
    """(T, layout.extra_dim) the hands and eyes of `params` (T frames) as the motion vector codes
    them (the module docstring), placed against the reference's head."""
    n = len(_t(params["scale"]).reshape(-1))
    out = []
    if layout.hands:
        if layout.hand_basis is None:
            raise UsageError("a motion vector with hands needs the hand basis (MotionLayout.hand_basis)")
        hands, vis = np.asarray(params["hands"], np.float32), np.asarray(params["hand_visible"], np.float32)
        hands, vis = hands.reshape(n, 2, 21, 3), vis.reshape(n, 2, 21)
        seen = hand_seen(vis).astype(np.float32)
        s_ref, t_ref = float(_t(ref["scale"])), _t(ref["translation"]).numpy()[:2]
        wrist = (hands[:, :, WRIST, :2] - t_ref) / s_ref
        size = np.log(np.maximum(palm_length(hands), 1e-6) / s_ref)
        place = np.concatenate([wrist, size[..., None]], -1) * seen[..., None]
        shape = layout.hand_basis.encode(hand_pose(hands, vis)) * seen[..., None]
        out += [torch.as_tensor(a.reshape(n, -1), dtype=torch.float32) for a in (seen, place, shape)]
    if layout.eyes:
        out += [_t(params["gaze"]).reshape(n, 4), _t(params["eyelid"]).reshape(n, 2)]
    return torch.cat(out, 1) if out else torch.zeros(n, 0)


def reference_vector(ref: dict, n_expression: int, layout: MotionLayout | None = None) -> torch.Tensor:
    """What stage 1 is told about the reference frame: its expression, head rotation (6D) and
    the upper-body layout relative to the head in face heights, with the joints' visibility,
    then (with a `layout` of hands or eyes) its own hands and eyes as the motion vector codes them.
    (The identity shape stays out: it changes how the face looks, not how it moves.)"""
    vis = _t(ref["body_visible"])
    body = (_t(ref["body"]) - _t(ref["translation"])) / _t(ref["scale"]) * vis[:, None]
    base = [_t(ref["expression"])[:n_expression], matrix_to_rot6d(_t(ref["rotation"])), body.flatten(), vis]
    extra = _extra({k: _t(v)[None] for k, v in ref.items()}, ref, layout)[0] if layout else torch.zeros(0)
    return torch.cat([*base, extra])


def to_motion(
    params: dict, ref: dict, n_expression: int | None = None, layout: MotionLayout | None = None
) -> torch.Tensor:
    """(T, D) motion vectors of a clip's params relative to the reference frame `ref`: the face
    and body of `n_expression` coefficients, or the whole of `layout` (hands and eyes included)."""
    e = _t(params["expression"])
    k = layout.n_expression if layout else e.shape[-1] if n_expression is None else n_expression
    s_ref = _t(ref["scale"])
    rot = _t(ref["rotation"]).T @ _t(params["rotation"])
    trans = (_t(params["translation"]) - _t(ref["translation"])) / s_ref
    trans[:, 2] = torch.log(_t(params["scale"]) / s_ref)
    both = (_t(params["body_visible"]) * _t(ref["body_visible"]))[..., None]
    body = (_t(params["body"]) - _t(ref["body"])) / s_ref * both
    base = [e[:, :k] - _t(ref["expression"])[:k], matrix_to_rot6d(rot), trans, body.flatten(1)]
    return torch.cat([*base, _extra(params, ref, layout)] if layout else base, dim=1)


def _extra_params(motion: torch.Tensor, ref: dict, lay: MotionLayout) -> dict:
    """The hands and eyes params of motion vectors (T, D) of layout `lay`, placed by the reference."""
    n, out = len(motion), {}
    if lay.hands:
        seen = motion[:, lay.hand_visible] > 0.5  # (T, 2)
        place = motion[:, lay.hand_place].reshape(n, 2, HAND_PLACE)
        coeffs = motion[:, lay.hand_shape].reshape(n, 2, lay.hand_components).detach().cpu().numpy()
        shape = torch.as_tensor(lay.hand_basis.decode(coeffs), dtype=motion.dtype, device=motion.device)
        palm = ref["scale"] * torch.exp(place[..., 2])
        points = shape * palm[..., None, None]
        points[..., :2] += (ref["translation"][:2] + ref["scale"] * place[..., :2])[:, :, None]
        out["hands"] = torch.where(seen[..., None, None], points, torch.zeros_like(points))
        out["hand_visible"] = seen[..., None].expand(n, 2, 21).to(motion.dtype)
    if lay.eyes:
        out |= {"gaze": motion[:, lay.gaze].reshape(n, 2, 2), "eyelid": motion[:, lay.eyelid]}
    return out


def from_motion(motion: torch.Tensor, ref: dict, layout: MotionLayout | None = None) -> dict:
    """Params (expression, rotation, scale, translation, body; with a `layout` of hands or eyes
    theirs too) of motion vectors (T, D) applied to the reference. Joints the reference did not
    see stay at the reference position; a hand is seen where its `seen` value passes 0.5."""
    lay = layout or MotionLayout.of_dim(motion.shape[1], _t(ref["body"]).shape[0])
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
    } | _extra_params(motion, ref, lay)


def carry_parts(params: dict, ref_from: dict, ref_to: dict) -> dict:
    """The hands and eyes of `params` (placed against the reference `ref_from`) moved to the
    reference `ref_to`, as `from_motion(to_motion(...))` moves the face and body: hands by the
    heads' similarity (offset from the head over its scale), gaze and eyelids as they are."""
    out = {k: np.asarray(params[k]) for k in PART_KEYS["eyes"] if k in params}
    if "hands" in params:
        ratio = float(_t(ref_to["scale"]) / _t(ref_from["scale"]))
        origin_from, origin_to = _t(ref_from["translation"]).numpy(), _t(ref_to["translation"]).numpy()
        origin_from[2] = origin_to[2] = 0.0  # hand z is relative to the wrist
        seen = np.asarray(params["hand_visible"])
        moved = (np.asarray(params["hands"]) - origin_from) * ratio + origin_to
        out |= {"hands": np.where(seen[..., None] > 0, moved, 0).astype(np.float32), "hand_visible": seen}
    return out


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


def motion_stats(
    clip_params: list[dict], n_expression: int, floor: float, ref_every: int = 25, layout: MotionLayout | None = None
) -> MotionStats:
    """Statistics of motion vectors (of `layout`, else the face and body of `n_expression`
    coefficients) of every frame against references every `ref_every` frames, the way training
    pairs a window with a reference from the same clip; std floored per group (`floored_std`)."""
    vecs = []
    for p in clip_params:
        for r in range(0, len(p["expression"]), ref_every):
            vecs.append(to_motion(p, reference_of(p, r), n_expression, layout))
    if not vecs:
        raise UsageError("no clips with parameters to compute motion statistics on")
    allv = torch.cat(vecs)
    layout = layout or MotionLayout(n_expression, _t(clip_params[0]["body"]).shape[1])
    raw = allv.std(0)
    std = floored_std(raw, layout, floor)
    info = {"clips": len(clip_params), "vectors": len(allv), "n_expression": n_expression, "ref_every": ref_every}
    info |= {"floor": floor, "floored_dims": [int(i) for i in torch.nonzero(std > raw).flatten()]}
    return MotionStats(allv.mean(0), std, info)
