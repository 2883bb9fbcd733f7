"""Writers that leave a file whole or not at all, and say which path filled the disk.

Every file the harness writes outside MLflow and the cache (reports, audit pages, run artifacts before they are
logged) goes through :func:`write_text`: the text is redacted (``retrievers.infrastructure.redact``), written to a temporary
file beside the target and moved over it, so a full disk or a kill leaves the previous file (or none), never a
truncated one. :func:`writing` turns a full device inside any block into one :class:`NoSpaceError` naming the
path.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from retrievers.infrastructure.errors import NoSpaceError, UnwritableError, no_space_message, out_of_space
from retrievers.infrastructure.redact import redact_text


@contextlib.contextmanager
def writing(path: str | Path, what: str = "") -> Iterator[None]:
    """Inside the block, running out of space raises :class:`NoSpaceError` naming ``path`` (and ``what``)."""
    try:
        yield
    except NoSpaceError:
        raise
    except Exception as err:
        if out_of_space(err):
            raise NoSpaceError(no_space_message(path, what)) from None
        raise


def write_text(path: str | Path, text: str, *, what: str = "", redact: bool = True) -> Path:
    """Write ``text`` (secrets masked unless ``redact=False``) to ``path`` atomically; returns the path."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with writing(target, what):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(redact_text(text) if redact else text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(err, OSError) and not out_of_space(err):
                why = unwritable(target.parent) or (err.strerror or str(err))
                raise UnwritableError(f"cannot write {redact_text(str(target))}: {why}") from None
            raise
    return target


def unwritable(path: str | Path) -> str | None:
    """Why files cannot be created under the folder ``path`` (None when they can): a part of the path that
    is a file, a read-only file system, missing permission. Probes by creating (and removing) a file in the
    nearest folder of the path that exists; creates nothing else. Checked before any work starts, so a run
    never computes for minutes and then fails to write."""
    import errno
    import tempfile

    target = Path(path).expanduser()
    probe = target
    while not probe.exists():
        if probe.is_symlink():
            return f"{probe} is a broken symbolic link"
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"{probe} is a file, not a folder"
    try:
        fd, name = tempfile.mkstemp(prefix=".rbench-write-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        if out_of_space(err):
            return None  # a full device is reported by the writer that hits it, with what it was writing
        reason = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                  errno.EPERM: "operation not permitted"}.get(err.errno or -1, err.strerror or str(err))
        return f"cannot create files in {probe} ({reason})"
    return None
