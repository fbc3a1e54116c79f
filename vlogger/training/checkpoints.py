"""One way to read a checkpoint of either stage, older ones included.

A checkpoint's hyper-parameters are `{cfg, spec, config_version}`: the training config, the data
contract of its shards (`vlogger.core.spec.DataSpec`) and the layout version of both.
`migrate` brings an older checkpoint's hyper-parameters to the current version, in one place,
so no other code needs `.get(key, old_default)`. Tensors only (`weights_only=True`): no pickled
code runs when a downloaded checkpoint is opened.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from vlogger.body.fitting import basis_id
from vlogger.core.config import load_config
from vlogger.core.errors import ContractError
from vlogger.core.spec import DataSpec
from vlogger.core.tracking import tracker_class

CONFIG_VERSION = 4
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
    """Version 4 can start stage 2's ControlNet branch at a lower level (`model.control_level`;
    earlier models ran it from the full resolution), compile its sampling network on a GPU
    (`sampling.compile`, off before) and distil a teacher (`distill`, none before)."""
    cfg = copy.deepcopy(hp["cfg"])
    if cfg.get("stage") == "video":
        cfg["model"].setdefault("control_level", 0)
        cfg["sampling"].setdefault("compile", False)
        cfg.setdefault("distill", None)
    return hp | {"cfg": cfg, "config_version": 4}


MIGRATIONS = {1: _version_1_to_2, 2: _version_2_to_3, 3: _version_3_to_4}


def migrate(hp: dict, source: str) -> dict:
    """Hyper-parameters of any earlier layout, as the current version writes them."""
    version = int(hp.get("config_version", 1))
    if version > CONFIG_VERSION:
        raise ContractError(f"{source}: config_version {version} is newer than this vlogger's {CONFIG_VERSION}")
    while version < CONFIG_VERSION:
        hp = MIGRATIONS[version](hp)
        version = hp["config_version"]
    return hp


def read_checkpoint(path: str | Path, stage: str) -> tuple[dict, DataSpec, dict]:
    """(training config, data spec, state dict) of a `stage` checkpoint, migrated. The file is
    memory-mapped: what is not used (optimizer state; every weight when only the spec is read,
    as `--motion-from` does before generation loads the model) is never read from disk."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {stage} checkpoint (train one with `vlogger train {stage}`)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    hp = migrate(ckpt["hyper_parameters"], str(path))
    got = hp["cfg"].get("stage", stage)
    if got != stage:
        raise ContractError(f"{path}: a {got} checkpoint, where a {stage} checkpoint is needed")
    return hp["cfg"], DataSpec.from_dict(hp["spec"], str(path)), ckpt["state_dict"]


def ema_weights(state: dict) -> dict:
    """The EMA copy of the model's weights in a checkpoint's state dict, under the model's names."""
    return {k.removeprefix("ema.module."): v for k, v in state.items() if k.startswith("ema.module.")}
