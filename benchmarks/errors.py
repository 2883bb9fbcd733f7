"""Errors a user can act on: each names the file and line, or the config key and allowed values."""

from __future__ import annotations

from pathlib import Path


class RbenchError(Exception):
    """Base class: the CLI prints the message (no traceback) and exits non-zero."""


class DataError(RbenchError):
    """Bad input data. ``where`` is ``file``, ``file:line`` (``line`` an int, 1-based) or ``file: record N``
    (``line`` a string such as ``"record 3"``, for records of a JSON array, counted from one)."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | str | None = None) -> None:
        where = ""
        if path is not None:
            if line is None:
                where = f"{path}: "
            elif isinstance(line, int):
                where = f"{path}:{line}: "
            else:
                where = f"{path}: {line}: "
        super().__init__(where + message)
        self.path, self.line = path, line


class ConfigError(RbenchError):
    """A config value that cannot work; the message names the key and what is allowed."""


class TrackingError(RbenchError):
    """The tracking store failed during a run (a server that went away, a store that refused a write); what
    the run computed is kept on disk and the message says where."""
