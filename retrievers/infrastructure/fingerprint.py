"""The one hashing helper: canonical JSON -> sha256. Every identity (run config, dataset, cache entry)
is this function applied to that identity's own inputs."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII kept; tuples become lists, sets sorted lists."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "items"):
        return dict(obj.items())
    if hasattr(obj, "__dataclass_fields__"):
        return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
    raise TypeError(f"cannot fingerprint object of type {type(obj).__name__}")


def fingerprint(obj: Any, *, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj``, hex, truncated to ``length`` characters."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]


class StreamingFingerprint:
    """Incremental version for large inputs (a corpus): feed objects one by one."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, obj: Any) -> None:
        self._h.update(canonical_json(obj).encode("utf-8"))
        self._h.update(b"\n")

    def hexdigest(self, length: int = 16) -> str:
        return self._h.hexdigest()[:length]


def installed_versions(*names: str) -> dict[str, str]:
    """``{distribution: version}`` for those of ``names`` that are installed (identity inputs of caches
    and runs: the libraries that compute an artifact)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
