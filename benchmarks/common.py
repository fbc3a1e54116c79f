"""What every benchmark script shares: naming the machine and publishing a markdown block."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores"


def publish(lines: list[str], append: str | None) -> None:
    """Print the markdown block and, with `append`, add it to that file (benchmarks/RESULTS.md)."""
    text = "\n".join(lines)
    print(text)
    if append:
        with open(append, "a") as f:
            f.write("\n" + text)
