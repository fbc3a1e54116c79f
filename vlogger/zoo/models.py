"""Our own checkpoints in the zoo: files stored beside a registry with their sha256 and size, checked in
full before anything loads them, and grouped by name into models (a cascade's stage 1, stage 2 and
super-resolution files).

`vlogger zoo add-checkpoint` writes into the user's zoo (the cache folder and its local registry) or,
with `--ship`, into the registry in use (the packaged one, `models/` beside it), whose files ship inside
the package and must stay under SHIPPED_BUDGET bytes all together. What the files hold is not the zoo's
business: it stores bytes and refuses any whose hash the registry does not list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vlogger.zoo.fetch import get_entry, resolve, sha256_file
from vlogger.zoo.registry import (
    MODELS,
    SHIPPED_BUDGET,
    STAGES,
    ZooError,
    load_registry,
    local_registry_path,
    read_yaml,
    registry_path,
    write_entries,
)

CARD = "README.md"


@dataclass(frozen=True)
class ModelFiles:
    """A cascade's checkpoint files (a zoo model's are verified against the registry's sha256 first)."""

    motion: Path
    video: Path
    superres: tuple[Path, ...] = ()


def verified(name: str) -> Path:
    """The file of weights entry `name` after checking its size and full sha256 against the registry;
    a changed or damaged file is refused with both hashes."""
    entry = get_entry(name)
    if entry.kind == "model":
        raise ZooError(f"{name!r} is a model, not one file: its parts are {entry.parts}")
    if entry.sha256 is None:
        raise ZooError(f"{name!r} has no sha256 in the registry: an unverified file is not loaded")
    path = resolve(name)
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ZooError(
            f"{path}: sha256 {digest}, but the registry lists {entry.sha256} for {name!r}: the file was "
            "changed or damaged, so it is not loaded (restore it, or add the checkpoint again)"
        )
    return path


def model_files(name: str) -> ModelFiles:
    """The verified files of model `name`; an unknown name lists the models the registry has."""
    registry = load_registry()
    entry = registry.get(name)
    if entry is None or entry.kind != "model":
        models = sorted(n for n, e in registry.items() if e.kind == "model")
        what = "unknown" if entry is None else "not a model (a weights file)"
        raise ZooError(f"model {name!r}: {what}; models in the zoo: {', '.join(models) or 'none'}")
    parts = entry.parts
    for stage in ("motion", "video"):
        if not parts.get(stage):
            raise ZooError(
                f"model {name!r} has no {stage} checkpoint yet: add one with "
                f"`vlogger zoo add-checkpoint RUN_DIR --name {name} --stage {stage}`"
            )
    return ModelFiles(verified(parts["motion"]), verified(parts["video"]), tuple(map(verified, parts["superres"])))


def verify(names: list[str] | None = None) -> dict[str, str]:
    """name -> `ok`, or why not (hash or size mismatch, missing), for the named entries or every entry whose
    file is here (shipped, added, or cached after a download); models are ok when all their parts are."""
    registry = load_registry()
    unknown = sorted(set(names or ()) - set(registry))
    if unknown:
        raise ZooError(f"unknown zoo entries {unknown}; known: {', '.join(sorted(registry))}")
    out = {}
    for name in names or sorted(registry):
        entry = registry[name]
        if entry.kind == "model":
            parts = [entry.parts["motion"], entry.parts["video"], *entry.parts["superres"]]
            bad = {p: _check(p) for p in parts if p}
            bad = {p: why for p, why in bad.items() if why != "ok"}
            out[name] = "ok" if not bad else "; ".join(f"{p}: {why}" for p, why in bad.items())
        elif names or entry.path is not None or _is_cached(name):
            out[name] = _check(name)
    return out


def _is_cached(name: str) -> bool:
    try:
        resolve(name)
    except ZooError:
        return False
    return True


def _check(name: str) -> str:
    try:
        verified(name)
    except ZooError as e:
        return str(e)
    return "ok"


def model_dir(model: str, ship: bool) -> Path:
    """Where model `model`'s files go: `models/NAME` beside the registry in use (`ship`) or the user's."""
    return _registry(ship).parent / MODELS / model


def _registry(ship: bool) -> Path:
    return registry_path() if ship else local_registry_path()


def store_checkpoint(
    model: str, stage: str, data: bytes, *, licence: str, purpose: str, file_format: str, ship: bool
) -> Path:
    """Write `data` as model `model`'s `stage` file, record its sha256 and size as entry `MODEL.STAGE`, and
    name it in the model's entry (made on first use); returns the file. With `ship`, the files shipped
    inside the package must stay within SHIPPED_BUDGET bytes, else nothing is written."""
    if stage not in STAGES:
        raise ZooError(f"stage {stage!r}: one of {', '.join(STAGES)}")
    registry = _registry(ship)
    rel = f"{MODELS}/{model}/{stage}.safetensors"
    dest = registry.parent / rel
    if ship:
        others = sum(p.stat().st_size for p in (registry.parent / MODELS).rglob("*") if p.is_file() and p != dest)
        if others + len(data) > SHIPPED_BUDGET:
            raise ZooError(
                f"{dest}: {len(data) / 1e6:.1f} MB beside {others / 1e6:.1f} MB already shipped exceeds the "
                f"{SHIPPED_BUDGET / 1e6:.0f} MB the package may hold: host the file and give its `url` in "
                f"{registry} instead of a path"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    part = f"{model}.{stage}"
    fields = {
        "path": rel,
        "sha256": sha256_file(dest),
        "size": len(data),
        "licence": licence,
        "purpose": f"the {stage} checkpoint of the zoo model {model}",
        "format": file_format,
    }
    entry = read_yaml(registry, missing_ok=True).get(model) or {
        "kind": "model",
        "purpose": purpose,
        "licence": licence,
        "card": f"{MODELS}/{model}/{CARD}",
        "motion": None,
        "video": None,
        "superres": [],
    }
    entry = {**entry, "purpose": purpose, "licence": licence} | (
        {"superres": [part]} if stage == "superres" else {stage: part}
    )
    write_entries(registry, {part: fields, model: entry})
    return dest


def model_parts(model: str, ship: bool) -> dict[str, Path]:
    """stage -> file of the stages model `model` has in the registry `ship` names (for its card)."""
    entry = read_yaml(_registry(ship), missing_ok=True).get(model) or {}
    folder = model_dir(model, ship)
    return {s: folder / f"{s}.safetensors" for s in STAGES if entry.get(s) and (folder / f"{s}.safetensors").is_file()}


def write_card(model: str, text: str, ship: bool) -> Path:
    """The model card (markdown) beside the model's files."""
    path = model_dir(model, ship) / CARD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def shipped_bytes(registry: Path | None = None) -> int:
    """Bytes of everything in the `models/` folder beside the registry (default: the one in use)."""
    folder = registry_path(registry).parent / MODELS
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
