"""YAML configs as plain nested dicts, checked against their full default file.

Every config has one full default file under configs/ (its schema: the keys it has are the keys
there are); overlay files (sizes such as `train/motion_base.yaml`, data sets, the user's own) and
`--set section.key=value` overrides are merged over it, and a key the default does not have is
an error naming the file and the key, so a typo never trains the wrong model silently. Where
the default holds null or a value, an overlay's value replaces it whole (so `superres: null`
can become a section and `data.shards` a list).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from vlogger.core.errors import BadInput, UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = Path(__file__).parents[1] / "configs"  # a link to the repository's configs/, copied into wheels


class ConfigError(UserError, KeyError):
    """An unknown key in a config file or override; the message names where and which."""

    def __str__(self) -> str:
        return str(self.args[0])


def load_config(
    paths: str | Path | Sequence[str | Path] | None, default: str, overrides: list[str] | None = None
) -> dict:
    """Load `default` (relative to configs/), merge the overlay file(s) `paths` over it in order,
    then the overrides (`section.key=value`, values parsed as YAML: `0.5`, `true`, `[a, b]`, `null`)."""
    cfg = yaml.safe_load((CONFIG_DIR / default).read_text())
    if isinstance(paths, str | Path):
        paths = [paths]
    for path in paths or []:
        cfg = merge(cfg, yaml.safe_load(Path(path).read_text()) or {}, str(path))
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """Apply `section.key=value` overrides in place (and return cfg)."""
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not of the form section.key=value")
        set_dotted(cfg, key.strip(), yaml.safe_load(value))
    return cfg


def merge(base: dict, other: dict, source: str, prefix: str = "") -> dict:
    """`other` merged over `base` into a new dict; a key `base` lacks is a ConfigError naming
    `source` and the dotted key."""
    out = copy.deepcopy(base)
    for key, value in other.items():
        dotted = f"{prefix}{key}"
        if key not in out:
            raise ConfigError(f"{source}: unknown config key {dotted!r}")
        if isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = merge(out[key], value, source, f"{dotted}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """Set cfg['a']['b'] = value for dotted = 'a.b'; unknown keys are an error (typo guard)."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        if part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"--set: unknown config section {dotted!r}")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"--set: unknown config key {dotted!r}")
    node[leaf] = value


def read_yaml(path: str | Path, what: str) -> Any:
    """A user's YAML (or JSON) file as data; BadInput naming the file when it is missing or not YAML."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(path, f"{what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise BadInput(path, f"not YAML/JSON: {e}") from e
