"""What made a leaderboard row: checkpoints (sha256, step, config), sampler, code commit, device."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path

import torch

from vlogger.core.config import REPO_ROOT
from vlogger.training.checkpoints import checkpoint_step, read_checkpoint


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_record(path: Path, stage: str) -> dict:
    """sha256, training step and config of a checkpoint (the config says how it samples by default)."""
    cfg, spec, _ = read_checkpoint(path, stage)
    step = checkpoint_step(path, stage)
    return {"path": str(path), "sha256": sha256(path), "step": step, "config": cfg, "spec": spec.to_dict()}


def code_commit() -> str | None:
    """The checkout's commit (`-dirty` with uncommitted changes); None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine(device: str) -> dict:
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else platform.processor()
    return {
        "device": device,
        "name": name or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
