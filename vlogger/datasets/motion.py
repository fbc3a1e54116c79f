"""Stage-1 training windows from the shards: audio features, motion vectors, reference.

A window is N consecutive frames of one clip: its log-mel rows (with context frames either
side), the motion vectors of those frames relative to a reference frame of the same clip
taken far from the window (as VLOGGER samples it), and the reference's parameters as a
vector. No video is decoded, so stage 1 reads shards at tar speed. With hands in the model's
parts the motion vector codes them in a hand basis: the file `model.hand_basis`, or one fitted
on the training clips when the run starts (stored in the checkpoint by the module).
"""

from __future__ import annotations

import io
import logging
from functools import cached_property

import numpy as np

from vlogger.body.hand_basis import HandBasis, fit_hand_basis, placeholder_hand_basis
from vlogger.body.motion import (
    REFERENCE_KEYS,
    MotionLayout,
    MotionStats,
    motion_stats,
    reference_of,
    reference_vector,
    to_motion,
)
from vlogger.body.params import PART_KEYS, require_parts
from vlogger.core.errors import ContractError, UsageError
from vlogger.core.mel import mel_window
from vlogger.datasets.shards import clip_arrays
from vlogger.datasets.windows import ClipWindows, ShardWindows, trains_on

log = logging.getLogger(__name__)


def motion_keys(parts: tuple[str, ...]) -> tuple[str, ...]:
    """The params keys the motion vectors of a model of `parts` are made of."""
    return REFERENCE_KEYS + tuple(k for part in parts if part not in ("face", "body") for k in PART_KEYS[part])


def require_expression(params: dict, n_expression: int, where: str) -> None:
    """The body model's fit must carry at least the expression coefficients stage 1 models."""
    have = params["expression"].shape[1]
    if have < n_expression:
        raise ContractError(
            f"{where} carries {have} expression coefficients ({params['model']}), "
            f"model.n_expression asks for {n_expression}"
        )


class ToMotionWindows(ClipWindows):
    """Raw clip sample -> a list of stage-1 windows (random in training, a fixed grid in validation)."""

    def __init__(
        self,
        window: int,
        mel_context: int,
        min_ref_gap: int,
        n_expression: int,
        per_clip: int | None,
        seed: int,
        basis_id: str | None = None,
        parts: tuple[str, ...] = (),
        layout: MotionLayout | None = None,
    ):
        """`parts`: those the shards' spec promises (checked per clip); `layout`: the motion
        vector's (default: face and body of `n_expression` coefficients)."""
        super().__init__(window, min_ref_gap, per_clip, seed)
        self.mel_context, self.n_expression, self.basis_id = mel_context, n_expression, basis_id
        self.parts, self.layout = parts, layout or MotionLayout(n_expression)

    def __call__(self, sample: dict) -> list[dict]:
        key = sample["__key__"]
        meta, params = self.read(sample)
        if self.basis_id and params.get("basis_id") != self.basis_id:
            raise ContractError(
                f"{sample.get('__url__', '?')}: clip {key} was fitted with basis {params.get('basis_id')}, "
                f"training uses basis {self.basis_id}"
            )
        require_expression(params, self.n_expression, f"{sample.get('__url__', '?')}: clip {key}")
        require_parts(params, self.parts, f"{sample.get('__url__', '?')}: clip {key}")
        mel = np.load(io.BytesIO(sample["mel.npy"]))
        r = meta["mel"]["rows_per_frame"]
        out = []
        for start, ref in self.starts(meta):
            sl = {k: params[k][start : start + self.window] for k in motion_keys(self.layout.model_parts)}
            reference = reference_of(params, ref)
            out.append(
                {
                    "key": key,
                    "identity": meta["identity"],
                    "start": start,
                    "ref_index": ref,
                    "motion": to_motion(sl, reference, layout=self.layout).numpy(),
                    "ref": reference_vector(reference, self.n_expression, self.layout).numpy(),
                    "mel": mel_window(mel, start, self.window, r, self.mel_context).astype(np.float32),
                }
            )
        return out


class MotionDataModule(ShardWindows):
    """Stage-1 windows (`ToMotionWindows`) and the motion statistics of the training clips."""

    def __init__(self, cfg: dict, seed_offset: int = 0):
        super().__init__(cfg, seed_offset)
        self.basis_id = self.spec.basis_id
        r = cfg["data"]["rows_per_frame"]
        if r != self.spec.rows_per_frame:
            raise ContractError(
                f"data.rows_per_frame: {r} in the training config, {self.spec.rows_per_frame} in the shards"
            )

    @cached_property
    def parts(self) -> tuple[str, ...]:
        """The parts the model uses (`model.parts`, default all the shards carry)."""
        return self.spec.model_parts(self.cfg["model"]["parts"], "model.parts")

    @cached_property
    def layout(self) -> MotionLayout:
        """The motion vector of the model's parts, with its hand basis."""
        m = self.cfg["model"]
        return MotionLayout.of_parts(m["n_expression"], self.parts, m["hand_components"], self.hand_basis)

    def windows(self, per_clip: int | None, seed: int) -> ToMotionWindows:
        d = self.cfg["data"]
        n_expression = self.cfg["model"]["n_expression"]
        return ToMotionWindows(
            d["window"], d["mel_context"], d["min_ref_gap"], n_expression, per_clip, seed, self.basis_id,
            self.spec.parts, self.layout,
        )  # fmt: skip

    @cached_property
    def training_params(self) -> list[dict]:
        """What training reads: the params of the training clips (not the validation identities,
        not the out-of-sync ones) up to their held-out tail, the keys of the model's parts."""
        self.check_val_identities()
        d = self.cfg["data"]
        frames = ClipWindows(d["window"], d["min_ref_gap"], None, 0).hold_out(d.get("holdout_tail_s")).usable_frames
        clips = [
            c
            for c in clip_arrays(self.train_urls, ["params.npz"])
            if trains_on(c["json"], self.val_ids, d.get("max_sync_offset"))
        ]
        if not clips:
            raise UsageError(
                f"{d['shards']}: no training clip left for the motion statistics "
                "(all held out by data.val_identities or data.max_sync_offset)"
            )
        # one body model per shard folder (the data spec), so the first clip speaks for all
        require_expression(clips[0]["params.npz"], self.cfg["model"]["n_expression"], f"{d['shards']}")
        keys = motion_keys(self.parts)
        for c in clips:
            require_parts(c["params.npz"], self.parts, f"{d['shards']}: clip {c['key']}")
        return [{k: c["params.npz"][k][: frames(c["json"])] for k in keys} for c in clips]

    @cached_property
    def hand_basis(self) -> HandBasis | None:
        """The hand basis of `model.hand_basis`, else one fitted on the training clips (a
        placeholder where they show too few hands); None without hands in the model's parts."""
        m = self.cfg["model"]
        if "hands" not in self.parts:
            return None
        if m["hand_basis"]:
            return HandBasis.load(m["hand_basis"]).truncated(m["hand_components"])
        try:
            return fit_hand_basis(((p["hands"], p["hand_visible"]) for p in self.training_params), m["hand_components"])
        except ValueError as e:
            log.warning("no hand basis learnt from %s (%s): a placeholder one", self.cfg["data"]["shards"], e)
            return placeholder_hand_basis(m["hand_components"])

    def stats(self) -> MotionStats:
        """Normalisation statistics over what training reads (`training_params`)."""
        m = self.cfg["model"]
        return motion_stats(self.training_params, m["n_expression"], self.cfg["data"]["std_floor"], layout=self.layout)
