"""A content-addressed cache for embeddings, indexes and runs (no work done twice).

Each entry is a folder ``<dir>/<kind>/<key>/`` holding its files plus ``manifest.json`` (what it is, what it
was built from, and each file's size and sha256); ``key`` is :func:`retrievers.infrastructure.fingerprint.fingerprint` of
only that artifact's inputs. Entries are written into a temporary sibling folder and renamed into place, so
a reader sees either a complete entry or none; a crash mid-write leaves only a ``.tmp-<key>-<pid>-*`` folder
that is never read and is removed by the next process once its writer is gone.

Integrity: every read checks the entry's files against its manifest (sizes always, checksums once per
process per file version). A mismatch — a truncated or overwritten file — is reported naming the entry,
the entry is moved to ``<dir>/.quarantine/`` and treated as a miss, so the work is recomputed. Entries
written before checksums existed get them on first read (trust on first use).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from retrievers.infrastructure.fingerprint import fingerprint
from retrievers.infrastructure.safe_write import writing

log = logging.getLogger(__name__)

MODES = ("use", "refresh", "off")
CACHE_MODES = MODES  #: ``cache.mode`` / ``retriever.cache_mode`` values, defined once
_JSON_MEMO: dict[tuple[str, int], Any] = {}
_VERIFIED: set[tuple[str, int, int]] = set()  # (file, size, mtime_ns) checked against its manifest
_SWEPT: set[str] = set()  # kind folders cleaned of dead writers' leftovers by this process
MANIFEST = "manifest.json"
QUARANTINE = ".quarantine"
STALE_LOCK_S = 3600  # an unheld lock file older than this is removed


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file of an entry (the manifest excepted); ``.npy`` files also their shape."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name == MANIFEST:
            continue
        info: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if path.suffix == ".npy":
            try:
                import numpy as np

                info["shape"] = list(np.load(path, mmap_mode="r").shape)
            except Exception:  # noqa: BLE001 - not a loadable array: checksum only
                pass
        out[str(path.relative_to(folder))] = info
    return out


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


class Cache:
    """``mode``: ``use`` reads and writes; ``refresh`` recomputes and overwrites; ``off`` neither."""

    def __init__(self, dir: str | Path = "results/cache", mode: str = "use") -> None:
        if mode not in MODES:
            raise ValueError(f"cache.mode must be one of {'|'.join(MODES)}, got {mode!r}")
        self.dir, self.mode = Path(dir), mode
        self.hits = self.misses = self.quarantined = 0

    @staticmethod
    def key(inputs: Any) -> str:
        return fingerprint(inputs, length=32)

    def entry(self, kind: str, key: str) -> Path:
        return self.dir / kind / key

    def get(self, kind: str, key: str) -> Path | None:
        """The entry's folder if a complete, intact one exists and the mode allows reading it (a corrupt
        entry is quarantined and counts as a miss)."""
        if self.mode != "use":
            return None
        self.sweep(kind)
        path = self.entry(kind, key)
        if (path / MANIFEST).is_file() and self.verify(kind, key):
            self.hits += 1
            return path
        self.misses += 1
        return None

    def verify(self, kind: str, key: str) -> bool:
        """Check an entry's files against its manifest; quarantine it on any mismatch."""
        path = self.entry(kind, key)
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            return self.quarantine(kind, key, f"unreadable manifest ({type(err).__name__})")
        files = manifest.get("files")
        if files is None:  # written before checksums existed: record them now (trust on first use)
            try:
                manifest["files"] = describe_files(path)
                tmp = path / f".{MANIFEST}.{os.getpid()}.tmp"
                tmp.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
                os.replace(tmp, path / MANIFEST)
            except OSError:
                pass
            return True
        for name, info in files.items():
            f = path / name
            try:
                st = f.stat()
            except OSError:
                return self.quarantine(kind, key, f"file {name} is missing")
            if st.st_size != info.get("bytes"):
                return self.quarantine(kind, key, f"file {name} has {st.st_size} bytes, the manifest says {info.get('bytes')}")
            stamp = (str(f), st.st_size, st.st_mtime_ns)
            if stamp in _VERIFIED:
                continue
            if file_sha256(f) != info.get("sha256"):
                return self.quarantine(kind, key, f"file {name} does not match its checksum")
            _VERIFIED.add(stamp)
        return True

    def quarantine(self, kind: str, key: str, why: str) -> bool:
        """Move a corrupt entry aside (``<dir>/.quarantine/``), say so naming it, and return False."""
        src = self.entry(kind, key)
        dest = self.dir / QUARANTINE / f"{kind}-{key}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
            where = f"moved to {dest}"
        except OSError as err:
            shutil.rmtree(src, ignore_errors=True)
            where = f"removed ({type(err).__name__} moving it aside)"
        msg = f"cache entry {kind}/{key} is corrupt: {why}; {where}; recomputing"
        log.warning(msg)
        print(f"rbench: warning: {msg}", file=sys.stderr, flush=True)
        self.quarantined += 1
        return False

    def sweep(self, kind: str) -> None:
        """Once per process per kind: remove ``.tmp-*`` folders whose writer (on this host) is gone, and
        lock files nobody holds that are older than an hour."""
        folder = self.dir / kind
        if str(folder) in _SWEPT or not folder.is_dir():
            return
        _SWEPT.add(str(folder))
        import fcntl

        for tmp in folder.glob(".tmp-*"):
            parts = tmp.name.split("-")
            # .tmp-<key8>-<host6>-<pid>-<random>
            if len(parts) >= 5 and parts[3].isdigit() and parts[2] == _HOST and not pid_alive(int(parts[3])):
                shutil.rmtree(tmp, ignore_errors=True)
        now = time.time()
        for lock in folder.glob(".*.lock"):
            try:
                if now - lock.stat().st_mtime < STALE_LOCK_S:
                    continue
                with open(lock, "a") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    lock.unlink()
            except OSError:  # held by a live process, or already gone
                continue

    def put(self, kind: str, key: str, write: Callable[[Path], None], manifest: dict[str, Any]) -> Path | None:
        """Run ``write(tmp_folder)``, add the manifest, and publish the folder atomically.

        Returns the published folder (``None`` with ``mode=off``, where nothing is written). If ``write``
        raises, the temporary folder is removed and the exception propagates.
        """
        if self.mode == "off":
            return None
        final = self.entry(kind, key)
        with writing(final, "the cache entry"):
            return self._put(final, kind, key, write, manifest)

    def _put(self, final: Path, kind: str, key: str, write: Callable[[Path], None], manifest: dict[str, Any]) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:8]}-{_HOST}-{os.getpid()}-", dir=final.parent))
        try:
            write(tmp)
            info = {"kind": kind, "key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **manifest,
                    "files": describe_files(tmp)}
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
        self.sweep(kind)
        path = folder / f".{key}.lock"
        while True:  # the lock file is removed on release: lock the file that is at ``path`` now, not an unlinked one
            fh = open(path, "a")
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            fh.close()
        try:
            yield
        finally:  # Ctrl-C included: no lock file stays behind
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

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
            try:
                _JSON_MEMO[stamp] = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # verified, yet unreadable: treat as corrupt
                self.hits -= 1
                self.misses += 1
                self.quarantine(kind, key, f"file {filename} is not valid JSON")
                return None
        return _JSON_MEMO[stamp]

    def checksum(self, kind: str, key: str, filename: str) -> str | None:
        """The recorded sha256 of one file of an entry (what dependent entries key on)."""
        try:
            return self.manifest(kind, key).get("files", {}).get(filename, {}).get("sha256")
        except (OSError, ValueError):
            return None

    def manifest(self, kind: str, key: str) -> dict[str, Any]:
        return json.loads((self.entry(kind, key) / MANIFEST).read_text(encoding="utf-8"))
