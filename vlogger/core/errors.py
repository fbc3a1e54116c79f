"""The errors a user can fix, said in one line by the CLI; every other exception keeps its traceback.

Batch jobs record a `BadInput` and carry on; a `ContractError` stops a run before it mixes data
of two contracts; a `UsageError` names the option or setting to change.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Something the user can fix: the CLI prints the message, not a traceback."""


class BadInput(UserError):
    """An input file that cannot be used; the message always names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ContractError(UserError):
    """Data of one contract given to code of another (vlogger.core.spec): shards, checkpoints
    or settings that disagree. The message names the setting and both values."""


class UsageError(UserError, ValueError):
    """Options or settings that do not fit together, or a missing optional package; the message
    names the option and what to do."""
