"""One reading of the metadata ``versions=filter|decay`` acts on, for every corpus format.

``deprecated`` is a boolean: ``true``/``false`` (YAML, JSON), or the strings and numbers people write for
them (``"true"``, ``"no"``, ``1``, ``0``, ...); anything else is an error, never a truthy string.
``effective_date`` is an ISO 8601 date or date-time (``2024-03-01``, ``2024-03-01T09:00:00Z``), stored as
the ISO date; anything else is an error. ``supersedes``/``superseded_by`` name other documents of the
corpus: a document superseding itself, a reference to a document that is not there and a cycle of
versions (A supersedes B supersedes A) are errors naming the documents.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping

VERSION_KEYS = ("effective_date", "version", "supersedes", "superseded_by", "deprecated")
_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0", ""}


def boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if value is None:
        return False
    raise ValueError(f"{key}: expected true or false, got {value!r}")


def iso_date(value: Any, key: str) -> str:
    """The ISO date (``YYYY-MM-DD``) of a date, date-time or ISO 8601 string."""
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        try:
            return _dt.date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        try:
            return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
        except ValueError:
            pass
    raise ValueError(f"{key}: expected an ISO 8601 date such as 2024-03-01, got {value!r}")


def typed(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` with ``deprecated`` as a bool and ``effective_date`` as an ISO date (absent or empty values
    are left out); ValueError naming the key otherwise."""
    out = dict(meta)
    if "deprecated" in out:
        out["deprecated"] = boolean(out["deprecated"], "deprecated")
    date = out.get("effective_date")
    if date in (None, ""):
        out.pop("effective_date", None)
    else:
        out["effective_date"] = iso_date(date, "effective_date")
    for key in ("supersedes", "superseded_by"):
        ref = out.get(key)
        if ref in (None, "", False):
            out.pop(key, None)
        elif isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise ValueError(f"{key}: expected a document id, got {ref!r}")
        else:
            out[key] = str(ref).strip()
    return out


def version_problem(metas: Mapping[str, Mapping[str, Any]]) -> tuple[str, str] | None:
    """The first problem of a corpus's version links as ``(doc id, message)``, or None: a document that
    supersedes itself, names a document not in the corpus, or is part of a cycle."""
    for did, meta in metas.items():
        for key in ("supersedes", "superseded_by"):
            ref = meta.get(key)
            if ref is None:
                continue
            if ref == did:
                return did, f"{key}: the document names itself"
            if ref not in metas:
                return did, f"{key}: {ref!r} is not a document of the corpus"
    # newer-of edges: A.superseded_by = B, and B.supersedes = A, both mean A -> B
    newer: dict[str, set[str]] = {}
    for did, meta in metas.items():
        if meta.get("superseded_by"):
            newer.setdefault(did, set()).add(meta["superseded_by"])
        if meta.get("supersedes"):
            newer.setdefault(meta["supersedes"], set()).add(did)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(newer):
        if state.get(start):
            continue
        path, stack = [], [(start, iter(sorted(newer.get(start, ()))))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            if state.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                return child, "versions form a cycle: " + " -> superseded by -> ".join(cycle)
            if not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(newer.get(child, ())))))
    return None
