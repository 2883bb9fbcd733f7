"""Writers that leave a file whole or not at all, and say which path filled the disk.

Every file the harness writes outside MLflow and the cache (reports, audit pages, run artifacts before they are
logged) goes through :func:`write_text`: the text is redacted (``retrievers.redact``), written to a temporary
file beside the target and moved over it, so a full disk or a kill leaves the previous file (or none), never a
truncated one. :func:`writing` turns a full device inside any block into one :class:`NoSpaceError` naming the
path.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from retrievers.errors import NoSpaceError, no_space_message, out_of_space
from retrievers.redact import redact_text


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
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return target
