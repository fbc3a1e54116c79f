"""YAML configs as plain nested dicts with dotted overrides.

Configs stay dicts (not dataclasses) so a new key in YAML needs no code change; the
module that uses a section reads the keys it knows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(__file__).parents[1] / "configs"  # a link to the repository's configs/, copied into wheels


def load_config(path: str | Path | None, default: str, overrides: list[str] | None = None) -> dict:
    """Load `default` (relative to configs/), merge the user's file over it, then overrides.

    Overrides are `section.key=value` strings; values are parsed as YAML (so `0.5`, `true`,
    `[a, b]` and `null` work).
    """
    cfg = yaml.safe_load((CONFIG_DIR / default).read_text())
    if path is not None:
        cfg = merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """Apply `section.key=value` overrides in place (and return cfg)."""
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        set_dotted(cfg, key.strip(), yaml.safe_load(value))
    return cfg


def merge(base: dict, other: dict) -> dict:
    """Recursively merge `other` over `base`, returning a new dict."""
    out = copy.deepcopy(base)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """Set cfg['a']['b'] = value for dotted = 'a.b'; unknown keys are an error (typo guard)."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        if part not in node or not isinstance(node[part], dict):
            raise KeyError(f"unknown config section {dotted!r}")
        node = node[part]
    if leaf not in node:
        raise KeyError(f"unknown config key {dotted!r}")
    node[leaf] = value
