"""One way to read a checkpoint of either stage, older ones included.

A checkpoint's hyper-parameters are `{cfg, spec, config_version}`: the training config, the data
contract of its shards (`vlogger.core.spec.DataSpec`) and the layout version of both.
`migrate` brings an older checkpoint's hyper-parameters to the current version, in one place,
so no other code needs `.get(key, old_default)`. Two kinds of file, one reader each, chosen by
the suffix: `.ckpt` (Lightning, written by training; tensors only, `weights_only=True`, so no
pickled code runs) and `.safetensors` (the zoo's: the EMA weights in fp16 with the hyper-parameters
as JSON in its metadata, written by `vlogger.training.export`; no pickle at all).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from vlogger.body.fitting import basis_id
from vlogger.core.config import load_config
from vlogger.core.errors import BadInput, ContractError
from vlogger.core.spec import LEGACY_PARTS, DataSpec
from vlogger.core.tracking import tracker_class

CONFIG_VERSION = 8
STAGES = ("motion", "video")


def _version_1_to_2(hp: dict) -> dict:
    """Version 1 (round 1) stored the config alone, plus the basis id for stage 1. Its shards
    were made with the preprocessing defaults of the time, which are today's file's values of
    every spec setting; stage 2 checkpoints named no basis and used the shipped one."""
    cfg = copy.deepcopy(hp["cfg"])
    cfg["sampling"].setdefault("noise_correlation", 0.0)  # stage 2 before the option: independent frames
    cfg["model"].setdefault("residual_over_warped", False)
    pre = load_config(None, "preprocess/default.yaml")
    fmt = tracker_class(pre["tracking"]["backend"]).landmark_format
    spec = DataSpec.from_preprocess_config(pre, fmt, hp.get("basis_id") or basis_id(pre["fit"]))
    return {"cfg": cfg, "spec": spec.to_dict(), "config_version": 2}


def _version_2_to_3(hp: dict) -> dict:
    """Version 3 feathers stage 2's paste (`model.paste_feather`); earlier models pasted hard."""
    cfg = copy.deepcopy(hp["cfg"])
    if cfg.get("stage") == "video":
        cfg["model"].setdefault("paste_feather", 0.0)
    return hp | {"cfg": cfg, "config_version": 3}


def _version_3_to_4(hp: dict) -> dict:
    """Version 4 can weight stage 1's jaw (`loss.jaw_weight`; earlier models weighted it as the face)
    and augment its audio (`augment`; earlier models trained on it as recorded)."""
    cfg = copy.deepcopy(hp["cfg"])
    if cfg.get("stage") == "motion":
        cfg["loss"].setdefault("jaw_weight", 1.0)
        cfg.setdefault("augment", {"mel_noise": 0.0, "freq_mask": 0})
    return hp | {"cfg": cfg, "config_version": 4}


def _version_4_to_5(hp: dict) -> dict:
    """Version 5 can start stage 2's ControlNet branch at a lower level (`model.control_level`;
    earlier models ran it from the full resolution), compile its sampling network on a GPU
    (`sampling.compile`, off before) and distil a teacher (`distill`, none before)."""
    cfg = copy.deepcopy(hp["cfg"])
    if cfg.get("stage") == "video":
        cfg["model"].setdefault("control_level", 0)
        cfg["sampling"].setdefault("compile", False)
        cfg.setdefault("distill", None)
    return hp | {"cfg": cfg, "config_version": 5}


def _version_5_to_6(hp: dict) -> dict:
    """Version 6 records the parts a model uses (`model.parts`; issue 21's hands and eyes). Earlier
    models used the face and body whatever their shards carried: 14 control channels for stage 2,
    the face-and-body motion vector for stage 1 (whose hand and eye settings are then unused)."""
    cfg = copy.deepcopy(hp["cfg"])
    cfg["model"].setdefault("parts", list(LEGACY_PARTS))
    if "n_expression" in cfg["model"]:  # stage 1 (round-1 configs name no stage)
        cfg["model"].setdefault("hand_basis", None)
        cfg["model"].setdefault("hand_components", 0)
        cfg["loss"].setdefault("hands_weight", 0.0)
        cfg["loss"].setdefault("eyes_weight", 0.0)
    return hp | {"cfg": cfg, "config_version": 6}


def _version_6_to_7(hp: dict) -> dict:
    """Version 7 can warp stage 1's training audio (`augment.vtlp`) and share stage 2's training noise
    across a clip's frames (`diffusion.frame_noise_correlation`); earlier models did neither."""
    cfg = copy.deepcopy(hp["cfg"])
    if "augment" in cfg:
        cfg["augment"].setdefault("vtlp", 0.0)
    if cfg.get("stage") == "video" and "diffusion" in cfg:
        cfg["diffusion"].setdefault("frame_noise_correlation", 0.0)
    return hp | {"cfg": cfg, "config_version": 7}


def _version_7_to_8(hp: dict) -> dict:
    """Version 8 can give stage 1's denoiser a fitted linear line audio -> jaw (`model.jaw_prior`)
    and centre its audio rows on the clip (`data.centre_audio`); earlier models had no line and
    centred each window."""
    cfg = copy.deepcopy(hp["cfg"])
    if "augment" in cfg:  # stage 1 (round-1 configs name no stage)
        cfg["model"].setdefault("jaw_prior", 0.0)
        cfg["data"].setdefault("centre_audio", "window")
    return hp | {"cfg": cfg, "config_version": 8}


MIGRATIONS = {
    1: _version_1_to_2,
    2: _version_2_to_3,
    3: _version_3_to_4,
    4: _version_4_to_5,
    5: _version_5_to_6,
    6: _version_6_to_7,
    7: _version_7_to_8,
}


def migrate(hp: dict, source: str) -> dict:
    """Hyper-parameters of any earlier layout, as the current version writes them."""
    version = int(hp.get("config_version", 1))
    if version > CONFIG_VERSION:
        raise ContractError(f"{source}: config_version {version} is newer than this vlogger's {CONFIG_VERSION}")
    while version < CONFIG_VERSION:
        hp = MIGRATIONS[version](hp)
        version = hp["config_version"]
    return hp


ZOO_FORMAT = "vlogger-checkpoint-1"  # the `format` a zoo file's metadata names
HYPER_PARAMETERS = ("cfg", "spec", "config_version")


def _read_lightning(path: Path) -> tuple[dict, dict, int]:
    """A training checkpoint, memory-mapped: what is not used (optimizer state; every weight when
    only the spec is read, as `--motion-from` does before generation loads the model) is never
    read from disk."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return ckpt["hyper_parameters"], ckpt["state_dict"], int(ckpt.get("global_step", -1))


def _read_safetensors(path: Path) -> tuple[dict, dict, int]:
    """A zoo file: its fp16 EMA weights (`model.*`) as fp32, loaded into the model and into its EMA
    copy alike, beside the module's own buffers as they were saved."""
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    except (SafetensorError, OSError) as e:
        raise BadInput(path, f"not a readable safetensors file: {e}") from e
    if meta.get("format") != ZOO_FORMAT or any(k not in meta for k in HYPER_PARAMETERS):
        raise BadInput(path, f"no {ZOO_FORMAT} metadata ({', '.join(HYPER_PARAMETERS)}): not a vlogger zoo checkpoint")
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    state |= {"ema.module." + k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return {k: json.loads(meta[k]) for k in HYPER_PARAMETERS}, state, int(meta.get("step", -1))


READERS: dict[str, Callable[[Path], tuple[dict, dict, int]]] = {
    ".ckpt": _read_lightning,
    ".safetensors": _read_safetensors,
}


def _read(path: str | Path, stage: str) -> tuple[dict, dict, int]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {stage} checkpoint (train one with `vlogger train {stage}`)")
    reader = READERS.get(path.suffix)
    if reader is None:
        raise BadInput(
            path, f"not a checkpoint: {' or '.join(READERS)} files are read, not {path.suffix or 'no suffix'}"
        )
    return reader(path)


def read_checkpoint(path: str | Path, stage: str) -> tuple[dict, DataSpec, dict]:
    """(training config, data spec, state dict) of a `stage` checkpoint of either kind, migrated."""
    hp, state, _ = _read(path, stage)
    hp = migrate(hp, str(path))
    got = hp["cfg"].get("stage", stage)
    if got != stage:
        raise ContractError(f"{path}: a {got} checkpoint, where a {stage} checkpoint is needed")
    return hp["cfg"], DataSpec.from_dict(hp["spec"], str(path)), state


def checkpoint_step(path: str | Path, stage: str) -> int:
    """The training step a checkpoint of either kind was saved at (-1 when it does not say)."""
    return _read(path, stage)[2]


def ema_weights(state: dict) -> dict:
    """The EMA copy of the model's weights in a checkpoint's state dict, under the model's names."""
    return {k.removeprefix("ema.module."): v for k, v in state.items() if k.startswith("ema.module.")}
