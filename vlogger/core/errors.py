"""One exception for every input we refuse, so batch jobs can record it and carry on."""

from __future__ import annotations

from pathlib import Path


class BadInput(Exception):
    """An input file that cannot be used; the message always names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ContractError(Exception):
    """Data of one contract given to code of another (vlogger.core.spec): shards, checkpoints
    or settings that disagree. The message names the setting and both values."""
