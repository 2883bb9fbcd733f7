"""Version-aware retrieval: superseded and deprecated documents out of the index, or down-weighted.

Documents describe their versions in metadata: ``effective_date`` (ISO date), ``version``, ``supersedes``,
``superseded_by`` (a document id), ``deprecated`` (bool). The enterprise set has them; BEIR corpus lines
may carry a ``metadata`` object with the same fields. ``versions=`` composes after any retriever:

* ``ignore`` — no change (the default; no wrapper is built);
* ``filter`` — drop chunks of superseded (``superseded_by`` set) or deprecated documents at index time;
* ``decay`` — at ranking time, scale each hit's per-query min-max normalised score by
  ``superseded_factor`` (superseded), ``deprecated_factor`` (deprecated) and, with ``half_life_days``,
  ``0.5 ** (age / half_life_days)``, where age is the time from the document's ``effective_date`` to the
  newest one in the corpus; then re-rank.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping, Sequence

from chunkers.types import Chunk, Query, Run
from retrievers.base import Retriever, top_k_of

MODES = ("ignore", "filter", "decay")


def is_stale(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("superseded_by")) or bool(meta.get("deprecated"))


def _date(value: Any) -> _dt.date | None:
    if not value:
        return None
    try:
        return _dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


class VersionAwareRetriever:
    """Wraps a retriever (chunk- or document-level; keeps its level)."""

    def __init__(self, *, retriever: Retriever, mode: str = "decay", superseded_factor: float = 0.5,
                 deprecated_factor: float = 0.25, half_life_days: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"versions.mode must be one of {'|'.join(MODES)}, got {mode!r}")
        for key, value in (("superseded_factor", superseded_factor), ("deprecated_factor", deprecated_factor)):
            if not 0 <= float(value) <= 1:
                raise ValueError(f"versions.{key} must be in [0, 1], got {value}")
        self.retriever, self.mode = retriever, mode
        self.superseded_factor, self.deprecated_factor = float(superseded_factor), float(deprecated_factor)
        self.half_life_days = float(half_life_days) if half_life_days else None
        self.returns_docs = bool(getattr(retriever, "returns_docs", False))
        self._weight: dict[str, float] = {}  # doc id -> factor (only documents below 1)
        self._c2d: dict[str, str] = {}
        self.filtered_docs = 0

    @property
    def leaves(self) -> int:
        return getattr(self.retriever, "leaves", 1)

    @property
    def chunk_lists(self) -> dict[str, list[dict[str, float]]] | None:
        return getattr(self.retriever, "chunk_lists", None)

    @property
    def records(self) -> Any:
        return getattr(self.retriever, "records", None)

    def weight(self, meta: Mapping[str, Any], newest: _dt.date | None) -> float:
        w = 1.0
        if meta.get("superseded_by"):
            w *= self.superseded_factor
        if meta.get("deprecated"):
            w *= self.deprecated_factor
        if self.half_life_days and newest is not None:
            day = _date(meta.get("effective_date"))
            if day is not None:
                w *= 0.5 ** (max(0, (newest - day).days) / self.half_life_days)
        return w

    def index(self, chunks: Sequence[Chunk]) -> None:
        self._c2d = {c.id: c.doc_id for c in chunks}
        if self.mode == "filter":
            kept = [c for c in chunks if not is_stale(c.metadata)]
            self.filtered_docs = len({c.doc_id for c in chunks}) - len({c.doc_id for c in kept})
            chunks = kept
        elif self.mode == "decay":
            dates = [d for d in (_date(c.metadata.get("effective_date")) for c in chunks) if d is not None]
            newest = max(dates) if dates else None
            self._weight = {}
            for c in chunks:
                w = self.weight(c.metadata, newest)
                if w < 1.0:
                    self._weight[c.doc_id] = w
        self.retriever.index(chunks)

    def search(self, queries: Sequence[Query], *, top_k: int) -> Run:
        if self.mode != "decay" or not self._weight:
            return self.retriever.search(queries, top_k=top_k)
        # retrieve deeper so documents promoted past decayed ones are there to promote
        run = self.retriever.search(queries, top_k=top_k * 2)
        out: Run = {}
        for qid, hits in run.items():
            if not hits:
                out[qid] = {}
                continue
            lo, hi = min(hits.values()), max(hits.values())
            span = max(hi - lo, 1e-9)
            rescored = {}
            for item, s in hits.items():
                doc = item if self.returns_docs else self._c2d.get(item, item)
                rescored[item] = (s - lo) / span * self._weight.get(doc, 1.0)
            out[qid] = top_k_of(rescored, top_k)
        return out

    def stats(self) -> dict[str, float]:
        out = dict(self.retriever.stats()) if hasattr(self.retriever, "stats") else {}
        out["versions_filtered_docs"] = float(self.filtered_docs)
        out["versions_decayed_docs"] = float(len(self._weight))
        return out
