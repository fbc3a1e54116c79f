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
from vlogger.core.linear_audio import clip_features, fit_ridge
from vlogger.core.mel import centre_on_clip, mel_window
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
        centre_audio: str = "window",
    ):
        """`parts`: those the shards' spec promises (checked per clip); `layout`: the motion
        vector's (default: face and body of `n_expression` coefficients); `centre_audio`: clip =
        the rows centred on the clip's mean before windows are cut (window: the denoiser centres)."""
        super().__init__(window, min_ref_gap, per_clip, seed)
        self.mel_context, self.n_expression, self.basis_id = mel_context, n_expression, basis_id
        self.parts, self.layout = parts, layout or MotionLayout(n_expression)
        self.centre_audio = centre_audio

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
        if self.centre_audio == "clip":
            mel = centre_on_clip(mel)
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
            self.spec.parts, self.layout, d["centre_audio"],
        )  # fmt: skip

    def training_clips(self, members: list[str]) -> list[tuple[dict, int]]:
        """What training reads: the training clips (not the validation identities, not the
        out-of-sync ones) with their `members`, each with the frames before its held-out tail."""
        self.check_val_identities()
        d = self.cfg["data"]
        frames = ClipWindows(d["window"], d["min_ref_gap"], None, 0).hold_out(d.get("holdout_tail_s")).usable_frames
        clips = [
            (c, frames(c["json"]))
            for c in clip_arrays(self.train_urls, members)
            if trains_on(c["json"], self.val_ids, d.get("max_sync_offset"))
        ]
        if not clips:
            raise UsageError(
                f"{d['shards']}: no training clip left for the motion statistics "
                "(all held out by data.val_identities or data.max_sync_offset)"
            )
        return clips

    @cached_property
    def training_params(self) -> list[dict]:
        """The params of what training reads (`training_clips`), the keys of the model's parts."""
        clips = self.training_clips(["params.npz"])
        shards = self.cfg["data"]["shards"]
        # one body model per shard folder (the data spec), so the first clip speaks for all
        require_expression(clips[0][0]["params.npz"], self.cfg["model"]["n_expression"], f"{shards}")
        keys = motion_keys(self.parts)
        for c, _ in clips:
            require_parts(c["params.npz"], self.parts, f"{shards}: clip {c['key']}")
        return [{k: c["params.npz"][k][:n] for k in keys} for c, n in clips]

    def jaw_prior(self, strength: float) -> tuple[np.ndarray, float]:
        """The ridge line audio rows -> jaw (`vlogger.core.linear_audio`) fitted with `strength` on
        what training reads, each frame's rows with the model's `data.mel_context` frames either side."""
        d = self.cfg["data"]
        x, y = [], []
        for c, n in self.training_clips(["params.npz", "mel.npy"]):
            x.append(clip_features(c["mel.npy"], n, d["rows_per_frame"], d["mel_context"]))
            jaw = c["params.npz"]["expression"][:n, 0].astype(np.float64)
            y.append(jaw - jaw.mean())
        log.info("fitting the jaw prior on %d frames of %d clips", sum(map(len, y)), len(y))
        return fit_ridge(np.concatenate(x), np.concatenate(y), strength)

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
