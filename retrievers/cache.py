"""A content-addressed cache for embeddings, indexes and runs (no work done twice).

Each entry is a folder ``<dir>/<kind>/<key>/`` holding its files plus ``manifest.json`` (what it is and
what it was built from); ``key`` is :func:`retrievers.fingerprint.fingerprint` of only that artifact's
inputs. Entries are written into a temporary sibling folder and renamed into place, so a reader sees
either a complete entry or none, and a crash mid-write leaves only a ``.tmp-*`` folder that is never read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from retrievers.fingerprint import fingerprint

MODES = ("use", "refresh", "off")
_JSON_MEMO: dict[tuple[str, int], Any] = {}
MANIFEST = "manifest.json"


class Cache:
    """``mode``: ``use`` reads and writes; ``refresh`` recomputes and overwrites; ``off`` neither."""

    def __init__(self, dir: str | Path = "results/cache", mode: str = "use") -> None:
        if mode not in MODES:
            raise ValueError(f"cache.mode must be one of {'|'.join(MODES)}, got {mode!r}")
        self.dir, self.mode = Path(dir), mode
        self.hits = self.misses = 0

    @staticmethod
    def key(inputs: Any) -> str:
        return fingerprint(inputs, length=32)

    def entry(self, kind: str, key: str) -> Path:
        return self.dir / kind / key

    def get(self, kind: str, key: str) -> Path | None:
        """The entry's folder if a complete one exists and the mode allows reading it."""
        if self.mode != "use":
            return None
        path = self.entry(kind, key)
        if (path / MANIFEST).is_file():
            self.hits += 1
            return path
        self.misses += 1
        return None

    def put(self, kind: str, key: str, write: Callable[[Path], None], manifest: dict[str, Any]) -> Path | None:
        """Run ``write(tmp_folder)``, add the manifest, and publish the folder atomically.

        Returns the published folder (``None`` with ``mode=off``, where nothing is written). If ``write``
        raises, the temporary folder is removed and the exception propagates.
        """
        if self.mode == "off":
            return None
        final = self.entry(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:8]}-", dir=final.parent))
        try:
            write(tmp)
            info = {"kind": kind, "key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **manifest}
            (tmp / MANIFEST).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
            if final.exists():  # refresh, or another process published first: replace it
                trash = Path(tempfile.mkdtemp(prefix=f".old-{key[:8]}-", dir=final.parent))
                try:
                    os.replace(final, trash / "entry")
                except FileNotFoundError:
                    pass
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    @contextlib.contextmanager
    def claim(self, kind: str, key: str) -> Iterator[None]:
        """Hold an exclusive lock on one entry while computing it, so parallel workers that need the same
        entry compute it once: the second waits here, then finds the first's result with :meth:`get`.
        (``fcntl`` advisory locks: released by the OS if the holder dies; local and NFSv4 file systems.)"""
        if self.mode == "off":
            yield
            return
        import fcntl

        folder = self.dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f".{key}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load_json(self, kind: str, key: str, filename: str) -> Any | None:
        """The parsed JSON file of a complete entry, or None. Parsed files are memoised per process
        (entries are immutable once published, and keyed by content), so the points of a sweep that
        share a base run read it once."""
        path = self.get(kind, key)
        if path is None:
            return None
        target = path / filename
        stamp = (str(target), target.stat().st_mtime_ns)
        if stamp not in _JSON_MEMO:
            if len(_JSON_MEMO) >= 16:
                _JSON_MEMO.pop(next(iter(_JSON_MEMO)))
            _JSON_MEMO[stamp] = json.loads(target.read_text(encoding="utf-8"))
        return _JSON_MEMO[stamp]

    def manifest(self, kind: str, key: str) -> dict[str, Any]:
        return json.loads((self.entry(kind, key) / MANIFEST).read_text(encoding="utf-8"))
