"""The data contract: what preprocessing made of the videos, carried into every checkpoint.

Preprocessing writes a `DataSpec` into `index.json`; the DataModules refuse shards of another
spec; the training modules store it in every checkpoint; generation, reconstruction and the
benchmarks rebuild their preprocessing settings from the checkpoint's spec, so a model sees at
inference what it saw in training whatever today's default config says. A mismatch is a
`ContractError` that names the setting and both values, never a warning.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from vlogger.core.errors import ContractError
from vlogger.core.landmarks import has_iris

SPEC_VERSION = 1
# parts of the per-frame params (vlogger.body.params.PART_KEYS); a stored spec without the
# field predates hands and eyes and reads as LEGACY_PARTS
LEGACY_PARTS = ("face", "body")
ALL_PARTS = ("face", "body", "hands", "eyes")  # in the order specs and models list them


def frame_rows(sample_rate: int, hop_length: int, fps: float) -> int:
    """Log-mel rows per video frame (4 at 16 kHz, hop 160, 25 fps): whole, or the audio and video
    windows of a sample would drift apart."""
    r = sample_rate / (hop_length * fps)
    if abs(r - round(r)) > 1e-6:
        raise ContractError(f"hop {hop_length} at {sample_rate} Hz does not divide {fps} fps")
    return round(r)


@dataclass(frozen=True)
class DataSpec:
    """Everything about the shards a model's inputs depend on."""

    fps: int
    sample_rate: int
    audio_features: dict  # LogMel settings (n_mels, n_fft, win_length, hop_length, f_min, f_max)
    crop: dict  # size, scale, shift_down, smooth_seconds, keep_inside
    landmark_format: str  # vlogger.core.landmarks.FORMATS key
    body_model: str | None  # facemesh | smplx | None (no params.npz)
    basis_id: str | None  # the body model's parameter basis (face-mesh basis hash, SMPL-X file)
    parts: tuple[str, ...] = LEGACY_PARTS  # what params.npz carries: face, body, hands, eyes
    version: int = field(default=SPEC_VERSION)

    @property
    def rows_per_frame(self) -> int:
        """Log-mel rows per video frame (`frame_rows`)."""
        return frame_rows(self.sample_rate, self.audio_features["hop_length"], self.fps)

    @classmethod
    def from_preprocess_config(cls, cfg: dict, landmark_format: str, basis_id: str | None) -> DataSpec:
        """The spec a preprocessing run with `cfg` produces: hands where the tracker runs the hand
        model, eyes (gaze, blinks) where the landmark format has the iris."""
        hands = ("hands",) if cfg["tracking"]["hand_stride"] and cfg["tracking"]["backend"] == "mediapipe" else ()
        eyes = ("eyes",) if has_iris(landmark_format) else ()
        return cls(
            fps=int(cfg["ingest"]["fps"]),
            sample_rate=int(cfg["ingest"]["sample_rate"]),
            audio_features=dict(cfg["audio_features"]),
            crop=dict(cfg["crop"]),
            landmark_format=landmark_format,
            body_model=cfg["fit"]["body_model"],
            basis_id=basis_id,
            parts=LEGACY_PARTS + hands + eyes,
        )

    def to_dict(self) -> dict:
        """The stored (JSON) form: equal to what is read back from index.json or a checkpoint."""
        return asdict(self) | {"parts": list(self.parts)}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> DataSpec:
        """Read a stored spec; `source` (a file or checkpoint) names where, in errors."""
        names = {f.name for f in fields(cls)}
        d = {"parts": LEGACY_PARTS, **d}
        d["parts"] = tuple(d["parts"])
        missing = sorted(names - set(d) - {"version"})
        if missing:
            raise ContractError(f"{source}: data spec lacks {', '.join(missing)}")
        if int(d.get("version", SPEC_VERSION)) > SPEC_VERSION:
            raise ContractError(f"{source}: data spec version {d['version']} is newer than this vlogger's")
        return cls(**{k: copy.deepcopy(v) for k, v in d.items() if k in names})

    @classmethod
    def of_shards(cls, root: str | Path) -> DataSpec:
        """The spec in a preprocessed folder's index.json."""
        index = Path(root) / "index.json"
        if not index.is_file():
            raise ContractError(f"{index}: missing (run `vlogger preprocess`, or `vlogger merge-index` after jobs)")
        data = json.loads(index.read_text())
        if "spec" not in data:
            raise ContractError(f"{index}: no data spec (preprocessed by an older vlogger): preprocess again")
        return cls.from_dict(data["spec"], str(index))

    def model_parts(self, requested: list[str] | tuple[str, ...] | None, where: str) -> tuple[str, ...]:
        """The parts a model trained on these shards uses: `requested` (a config's `model.parts`,
        `where` names it in errors) or, when None, all the shards carry. Face and body are always
        in; a part the shards lack is a ContractError."""
        if requested is None:
            return self.parts
        unknown = sorted(set(requested) - set(ALL_PARTS))
        if unknown:
            raise ContractError(f"{where}: unknown parts {unknown} (known: {', '.join(ALL_PARTS)})")
        if not set(LEGACY_PARTS) <= set(requested):
            raise ContractError(f"{where}: {list(requested)} lacks face or body, which every model uses")
        lacking = sorted(set(requested) - set(self.parts))
        if lacking:
            raise ContractError(f"{where} asks for {lacking}: the shards' data spec has parts {list(self.parts)}")
        return tuple(p for p in ALL_PARTS if p in requested)

    def differences(self, other: DataSpec, ignore: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
        """(setting, mine, theirs) for every setting that differs, nested ones as `crop.scale`;
        settings in `ignore` are not compared."""
        out = []
        mine, theirs = self.to_dict(), other.to_dict()
        for key in (k for k in mine if k not in ignore):
            a, b = mine[key], theirs[key]
            if isinstance(a, dict) and isinstance(b, dict):
                out += [(f"{key}.{k}", a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            elif a != b:
                out.append((key, a, b))
        return out

    def require_same(self, other: DataSpec, mine: str, theirs: str, ignore: tuple[str, ...] = ()) -> None:
        """ContractError naming each differing setting (but those in `ignore`) with both values
        and where each comes from."""
        diff = self.differences(other, ignore)
        if diff:
            lines = "; ".join(f"{k}: {a!r} in {mine}, {b!r} in {theirs}" for k, a, b in diff)
            raise ContractError(f"data spec mismatch: {lines}")

    def preprocess_config(self, base: dict) -> dict:
        """A preprocessing config (today's `base` for tracking and quality thresholds) with every
        setting this spec fixes set to the spec's value: how inference prepares a photo or clip."""
        cfg = copy.deepcopy(base)
        cfg["ingest"]["fps"], cfg["ingest"]["sample_rate"] = self.fps, self.sample_rate
        cfg["audio_features"] = dict(self.audio_features)
        cfg["crop"] = dict(self.crop)
        cfg["fit"]["body_model"] = self.body_model
        if "hands" not in self.parts:
            cfg["tracking"]["hand_stride"] = 0
        return cfg
