"""Reading the versioned .npz files a learned basis is shipped in (face mesh, hands): one check of
format and version, so a wrong or newer file is refused the same way for every basis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vlogger.core.errors import BadInput


def read_basis_file(
    path: Path, fmt: str, version: int, keys: Sequence[str], missing_hint: str
) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays `keys` and the info dict of a basis file in format `fmt`; FileNotFoundError saying
    `missing_hint` when absent, BadInput for another format or a version newer than `version`."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {missing_hint}")
    with np.load(path, allow_pickle=False) as z:
        if str(z.get("format", "")) != fmt:
            raise BadInput(path, f"not a {fmt} file")
        if int(z["format_version"]) > version:
            raise BadInput(path, f"{fmt} format {int(z['format_version'])} is newer than this vlogger")
        return {k: z[k] for k in keys}, json.loads(str(z["info"]))
