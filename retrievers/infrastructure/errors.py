from retrievers.infrastructure.redact import redact_text
"""Errors raised by retrievers that a user can act on (the CLI prints them without a traceback)."""


class RetrieverError(RuntimeError):
    """A retriever cannot run as configured (e.g. a model that cannot be loaded offline)."""


class UnwritableError(RetrieverError):
    """A file cannot be written where it was asked for (a part of its path is a file, a read-only folder)."""


class NoSpaceError(RetrieverError):
    """The device a writer writes to is full (or over quota); the message names the path."""


def out_of_space(err: BaseException | None) -> bool:
    """Whether ``err`` (or what caused it) is a full device: ``ENOSPC``/``EDQUOT`` from the OS, SQLite's
    "database or disk is full" (also wrapped by SQLAlchemy and MLflow), or numpy's short write."""
    import errno
    import re

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, NoSpaceError):
            return True
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err).lower()
        if "database or disk is full" in text or "no space left on device" in text or "disk quota exceeded" in text:
            return True
        if isinstance(err, OSError) and err.errno is None and re.search(r"\d+ requested and \d+ written", text):
            return True  # numpy's tofile/np.save on a full device: a short write, reported without an errno
        err = err.__cause__ or err.__context__ or getattr(err, "orig", None)
    return False


def no_space_message(path: object, what: str = "") -> str:
    where = f"{what} " if what else ""
    return (f"no space left on the device writing {where}{redact_text(str(path))}; what was stored before is unchanged "
            f"-- free some space and run the same command again")
