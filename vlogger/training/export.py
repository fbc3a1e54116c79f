"""A training checkpoint as the zoo ships it: the EMA weights in fp16 safetensors (no pickle), the
hyper-parameters `{cfg, spec, config_version}` as JSON in the file's metadata, and the facts its model
card shows (data and people, steps, wall time, hardware, the data contract, benchmark figures).

`vlogger.training.checkpoints.read_checkpoint` reads the file back; the zoo stores and verifies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save

from vlogger.core.errors import BadInput
from vlogger.evaluation.leaderboard import read_result
from vlogger.training.checkpoints import HYPER_PARAMETERS, ZOO_FORMAT, ema_weights, migrate

FILE_FORMAT = f"safetensors ({ZOO_FORMAT}: fp16 EMA weights; cfg, spec, config_version as JSON metadata)"
STAGE_TITLES = {
    "motion": "Stage 1 (audio → motion)",
    "video": "Stage 2 (controls → frames)",
    "superres": "Super-resolution",
}


@dataclass(frozen=True)
class Exported:
    stage: str  # motion | video | superres
    data: bytes  # the safetensors file
    card: dict  # what the model card says about it


def checkpoint_of(run: Path) -> Path:
    """A run folder's last checkpoint, or the checkpoint file itself."""
    path = run / "checkpoints" / "last.ckpt" if run.is_dir() else run
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (a run folder of `vlogger train`, or its .ckpt file)")
    return path


def export_checkpoint(path: Path, notes: str | None = None, benchmark: Path | None = None) -> Exported:
    """The zoo file of a training checkpoint, with the card's facts (from its run folder's summary.json and
    the index.json of its shards, where they still are) and, if given, notes and a benchmark's results.json."""
    if path.suffix != ".ckpt":
        raise BadInput(path, "not a training checkpoint (.ckpt)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = migrate(ckpt["hyper_parameters"], str(path))
    state = ckpt["state_dict"]
    ema = ema_weights(state)
    if not ema:
        raise BadInput(path, "no EMA weights (ema.module.*) in its state dict")
    cfg = hp["cfg"]
    stage = "superres" if cfg.get("superres") else cfg["stage"]
    if cfg["stage"] == "video":  # a path on the machine that trained it, and only read at training
        cfg = {**cfg, "model": {**cfg["model"], "init_from": None}}
    tensors = {f"model.{k}": v.half() if v.is_floating_point() else v for k, v in ema.items()}
    # the module's own buffers (stage 1's motion statistics) and the EMA's count stay at full precision
    tensors |= {k: v for k, v in state.items() if not k.startswith(("model.", "ema.module."))}
    step = int(ckpt.get("global_step", -1))
    card = {
        "stage": stage,
        "source": str(path),
        "step": step,
        "parameters": sum(v.numel() for v in ema.values()),
        "run": _run_facts(path),
        "data": _data_facts(cfg),
        "spec": hp["spec"],
        "notes": notes,
        "benchmark": _benchmark(benchmark) if benchmark else None,
    }
    hyper = {"cfg": cfg, "spec": hp["spec"], "config_version": hp["config_version"]}
    meta = {"format": ZOO_FORMAT, "stage": stage, "step": str(step), "card": json.dumps(card)}
    meta |= {k: json.dumps(hyper[k]) for k in HYPER_PARAMETERS}
    return Exported(stage, save({k: v.contiguous() for k, v in tensors.items()}, meta), card)


def _run_facts(ckpt: Path) -> dict:
    """Steps, wall time and hardware from the run folder's summary.json (`segments`: one per start of a
    resumed run; older runs recorded only their last start's `fit_seconds`)."""
    summary = ckpt.parent.parent / "summary.json"
    if not summary.is_file():
        return {}
    s = json.loads(summary.read_text())
    keys = ("global_step", "fit_seconds", "steps_per_s", "samples_per_s", "peak_gpu_memory_gb", "val_loss_end")
    return {k: s[k] for k in (*keys, "segments") if k in s}


def _data_facts(cfg: dict) -> dict:
    """Per shard folder: clips, frames, minutes and the people of each split (from its index.json); the
    people held out of training by `data.val_identities`."""
    d = cfg["data"]
    roots = [d["shards"]] if isinstance(d["shards"], str) else list(d["shards"])
    held = sorted(d.get("val_identities") or [])
    folders = {}
    for root in roots:
        index = Path(root) / "index.json"
        if not index.is_file():
            folders[str(root)] = None  # not on this machine any more
            continue
        splits = json.loads(index.read_text())["splits"]
        folders[str(root)] = {
            name: {"clips": s["clips"], "frames": s["frames"], "identities": sorted(s["identities"])}
            for name, s in splits.items()
        }
    return {"shards": folders, "val_identities": held}


def _benchmark(path: Path) -> dict:
    """The aggregate scores of a `vlogger benchmark run` (or `vlogger evaluate`) results.json."""
    res = read_result(path)
    return {
        "file": str(path),
        "benchmark": res.get("benchmark", {}).get("benchmark"),
        "protocol_version": res.get("protocol_version"),
        "scored": res["scored"],
        "aggregate": res["aggregate"],
    }


def read_card(path: Path) -> dict:
    """The card facts stored in a zoo file's metadata."""
    with safe_open(path, "pt") as f:
        return json.loads((f.metadata() or {}).get("card", "{}"))


def model_card(name: str, files: dict[str, Path]) -> str:
    """The model card (markdown) of model `name` from its stage files' stored facts."""
    lines = [
        f"# {name}",
        "",
        "A vlogger cascade in the zoo, written by `vlogger zoo add-checkpoint`. Run it with",
        f"`vlogger generate --model {name} --image PHOTO --audio SPEECH --out DIR`; every file is checked against",
        "the registry's sha256 before it is loaded (`vlogger zoo verify`).",
    ]
    cards = {stage: read_card(path) for stage, path in files.items()}
    specs = [c["spec"] for c in cards.values()]
    shared = all(s == specs[0] for s in specs)  # the contract once when every stage has the same one
    for stage, card in cards.items():
        lines += ["", *_stage_section(stage, files[stage].name, card, with_spec=not shared)]
    if specs and shared:
        lines += ["", "## Data contract", "", *_spec_lines(specs[0])]
    return "\n".join(lines) + "\n"


def _spec_lines(spec: dict) -> list[str]:
    intro = "The shards' `vlogger.core.spec.DataSpec`, checked against every input at generation:"
    return [intro, "", "```yaml", yaml.safe_dump(spec).rstrip(), "```"]


def _stage_section(stage: str, file: str, c: dict, with_spec: bool) -> list[str]:
    run = c.get("run") or {}
    out = [f"## {STAGE_TITLES[stage]}: `{file}`", ""]
    out.append(
        f"- weights: EMA, fp16, {c['parameters'] / 1e6:.2f} M parameters, from `{c['source']}` at step {c['step']}"
    )
    segments = run.get("segments")
    # a checkpoint kept before the run's end (checkpoint.monitor) is one step of a longer run
    steps = (
        f"step {c['step']} of a run of {run['global_step']} steps"
        if run.get("global_step", 0) > c["step"]
        else f"{c['step']} steps"
    )
    if segments:
        hours = sum(s["seconds"] for s in segments) / 3600
        hardware = sorted({s["hardware"] for s in segments})
        out.append(f"- training: {steps} in {hours:.2f} h over {len(segments)} start(s) on {'; '.join(hardware)}")
    elif run:
        out.append(
            f"- training: {steps}; the last start of the run took {run.get('fit_seconds', '?')} s "
            f"({run.get('steps_per_s', '?')} steps/s); earlier starts and the hardware were not recorded"
        )
    else:
        out.append(f"- training: {steps}; the run's summary.json was not found")
    if "val_loss_end" in run:
        out.append(f"- validation loss at the run's end: {run['val_loss_end']:.4g}")
    data = c["data"]
    for root, splits in data["shards"].items():
        if splits is None:
            out.append(f"- data: `{root}` (its index.json was not found when the checkpoint was added)")
            continue
        for split, s in splits.items():
            people = s["identities"]
            if split == "train":
                people = [p for p in people if p not in data["val_identities"]]
            who = f"{len(people)} {'person' if len(people) == 1 else 'people'}"
            out.append(
                f"- data `{root}` {split}: {s['clips']} clips, {s['frames']} frames, {who}: " + ", ".join(people)
            )
    if data["val_identities"]:
        out.append(f"- held out of training (data.val_identities): {', '.join(data['val_identities'])}")
    if with_spec:
        out += ["", *_spec_lines(c["spec"])]
    if c.get("notes"):
        out += ["", c["notes"]]
    bench = c.get("benchmark")
    if bench:
        b = bench.get("benchmark") or {}
        where = f"{b.get('name', '?')} v{b.get('version', '?')}" if b else bench["file"]
        out += ["", f"Benchmark {where}, protocol {bench['protocol_version']}, {bench['scored']} videos scored:", ""]
        out += ["| metric | value |", "|---|---|"]
        out += [f"| {k} | {v:.4g} |" for k, v in bench["aggregate"].items() if isinstance(v, int | float)]
    return out
