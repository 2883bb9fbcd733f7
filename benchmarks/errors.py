"""Errors a user can act on: each names the file and line, or the config key and allowed values."""

from __future__ import annotations

from pathlib import Path


class RbenchError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits non-zero."""


class DataError(RbenchError):
    """Bad input data. ``where`` is ``file`` or ``file:line``."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path, self.line = path, line


class ConfigError(RbenchError):
    """A config value that cannot work; the message names the key and what is allowed."""
