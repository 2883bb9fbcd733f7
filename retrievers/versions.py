"""Version-aware retrieval: superseded and deprecated documents out of the index, or down-weighted.

Documents describe their versions in metadata: ``effective_date`` (ISO date), ``version``, ``supersedes``,
``superseded_by`` (a document id), ``deprecated`` (bool). The enterprise set has them; BEIR corpus lines
may carry a ``metadata`` object with the same fields. ``versions=`` composes after any retriever:

* ``ignore`` — no change (the default; the stage before is returned unchanged);
* ``filter`` — drop chunks of superseded (``superseded_by`` set) or deprecated documents at index time;
* ``decay`` — at ranking time, scale each hit's per-query min-max normalised score by
  ``superseded_factor`` (superseded), ``deprecated_factor`` (deprecated) and, with ``half_life_days``,
  ``0.5 ** (age / half_life_days)``, where age is the time from the document's ``effective_date`` to the
  newest one in the corpus; then re-rank.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, ClassVar, Mapping, Sequence

from chunkers.types import Chunk, Query
from retrievers.base import top_k_of
from retrievers.stage import Stage, as_stage
from retrievers.types import Ranking, Run
from chunkers.options import Options, number, one_of, optional

MODES = ("ignore", "filter", "decay")


def is_stale(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("superseded_by")) or bool(meta.get("deprecated"))


def successors(corpus_meta: Mapping[str, Mapping[str, Any]], doc: str) -> list[str]:
    """The newer versions of ``doc``, nearest first, following ``superseded_by`` (a cycle ends the chain)."""
    out, seen = [], {doc}
    nxt = corpus_meta.get(doc, {}).get("superseded_by")
    while nxt and nxt not in seen:
        out.append(str(nxt))
        seen.add(str(nxt))
        nxt = corpus_meta.get(str(nxt), {}).get("superseded_by")
    return out


def _date(value: Any) -> _dt.date | None:
    if not value:
        return None
    try:
        return _dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def unit_scores(hits: Mapping[str, float]) -> dict[str, float]:
    """Scores on a scale where a factor means what it says: divided by the best score when none is negative
    (BM25, RRF, cosine), so halving a score halves it against every other document; otherwise min-max
    onto [0.5, 1] (logits), so no document is pinned at 0 where no factor could move it. (Plain min-max
    put the last candidate at 0: with two candidates, decay could never promote the current version.)"""
    lo, hi = min(hits.values()), max(hits.values())
    if lo >= 0 and hi > 0:
        return {d: s / hi for d, s in hits.items()}
    span = max(hi - lo, 1e-9)
    return {d: 0.5 + 0.5 * (s - lo) / span for d, s in hits.items()}


class VersionAwareRetriever:
    """A stage wrapping the stage before it (``retriever``: a stage, or a chunk-level retriever, which goes
    behind the chunk -> document adapter). Decay rescales document scores; filter removes chunks of stale
    documents before the stage before it indexes them."""

    OPTIONS: ClassVar[Options] = {"mode": one_of(*MODES), "superseded_factor": number(0, 1),
                                  "deprecated_factor": number(0, 1), "half_life_days": optional(number(0, open_lo=True))}

    def __init__(self, retriever: Any = None, *, mode: str = "decay", superseded_factor: float = 0.5,
                 deprecated_factor: float = 0.25, half_life_days: float | None = None) -> None:
        _check_mode(mode)
        for key, value in (("superseded_factor", superseded_factor), ("deprecated_factor", deprecated_factor)):
            if not 0 <= float(value) <= 1:
                raise ValueError(f"versions.{key} must be in [0, 1], got {value}")
        if retriever is None:
            raise ValueError("versions: the stage to wrap is missing")
        self.inner: Stage = as_stage(retriever)
        self.mode = mode
        self.superseded_factor, self.deprecated_factor = float(superseded_factor), float(deprecated_factor)
        self.half_life_days = float(half_life_days) if half_life_days else None
        self._weight: dict[str, float] = {}  # doc id -> factor (only documents below 1)
        self.filtered_docs = 0

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
        self.inner.index(chunks)

    def _stats(self, inner: Ranking) -> dict[str, float]:
        return {**inner.stats, "versions_filtered_docs": float(self.filtered_docs),
                "versions_decayed_docs": float(len(self._weight))}

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        if self.mode != "decay" or not self._weight:
            inner = self.inner.rank(queries, top_k=top_k)
            return Ranking(inner.run, inner.chunk_lists, inner.chunk_run, inner.records, inner.calls, self._stats(inner))
        # retrieve deeper so documents promoted past decayed ones are there to promote
        inner = self.inner.rank(queries, top_k=top_k * 2)
        out: Run = {}
        for qid, hits in inner.run.items():
            if not hits:
                out[qid] = {}
                continue
            out[qid] = top_k_of({d: s * self._weight.get(d, 1.0) for d, s in unit_scores(hits).items()}, top_k)
        # the chunk view follows the decayed document order (chunk_run: None)
        return Ranking(out, inner.chunk_lists, None, inner.records, inner.calls, self._stats(inner))


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"versions.mode must be one of {'|'.join(MODES)}, got {mode!r}")
    return mode


def versions(inner: Any = None, *, mode: str = "decay", **settings: Any) -> Any:
    """The ``versions`` group's factory: ``ignore`` returns the stage before unchanged, ``filter`` and
    ``decay`` wrap it in :class:`VersionAwareRetriever`."""
    if _check_mode(mode) == "ignore":
        return inner
    return VersionAwareRetriever(inner, mode=mode, **settings)


versions.OPTIONS = VersionAwareRetriever.OPTIONS  # type: ignore[attr-defined]  # what the ``versions`` group accepts
