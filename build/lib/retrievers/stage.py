"""The stage contract: what every step of a retrieval pipeline is, and how steps compose.

A pipeline is an ordered list of stages. The first ranks documents for queries (a retriever folded to
documents, a hybrid, a router); each later one wraps the stage before it (decomposition, version
handling, reranking). Every stage has the same two methods and returns one declared result type,
:class:`retrievers.types.Ranking`.

* :class:`Stage` — ``index(chunks)`` once, then ``rank(queries, top_k=...) -> Ranking`` many times;
* :class:`StageFactory` — what a wrapping config option instantiates to: called with the stage before it,
  it returns the wrapped stage (or that stage unchanged, for ``none``-style options);
* :class:`DocumentRanker` — the one chunk -> document adapter: a chunk-level :class:`Retriever` searched
  deep enough that folding its chunks still fills ``top_k`` documents;
* :func:`compose` — the one way stages are put together (used by the config builder in
  :mod:`retrievers.pipeline`, by the hybrid's bases and by the router's routes).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from chunkers.types import Chunk, Query
from retrievers.base import Retriever, aggregate_to_docs, check_aggregate, chunks_per_doc
from retrievers.types import Ranking


@runtime_checkable
class Stage(Protocol):
    """One step of a retrieval pipeline: indexes chunks once, then ranks documents for queries."""

    def index(self, chunks: Sequence[Chunk]) -> None: ...

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking: ...


@runtime_checkable
class StageFactory(Protocol):
    """A wrapping stage not yet given the stage it wraps (a config option with ``_partial_: true``, or a
    decomposer): ``factory(inner) -> Stage``."""

    def __call__(self, inner: Stage) -> Stage: ...


class DocumentRanker:
    """The chunk -> document adapter. Searches the chunk-level ``retriever`` for ``top_k`` x (chunks per
    document) chunks and folds them into ``top_k`` documents with ``aggregate`` (max | sum | first); the
    chunk run is kept as the ranking's ``chunk_run`` (span metrics and the audit read it). One base search
    per query."""

    def __init__(self, retriever: Retriever, *, aggregate: str = "max") -> None:
        self.retriever, self.aggregate = retriever, check_aggregate(aggregate)
        self._c2d: dict[str, str] = {}
        self._ratio = 1

    def index(self, chunks: Sequence[Chunk]) -> None:
        self.retriever.index(chunks)
        self._c2d = {c.id: c.doc_id for c in chunks}
        self._ratio = chunks_per_doc(len(chunks), len(set(self._c2d.values())))

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        if not queries:
            return Ranking({}, stats=dict(self.retriever.stats()))
        chunk_run = self.retriever.search(queries, top_k=top_k * self._ratio)
        run = aggregate_to_docs(chunk_run, self._c2d, mode=self.aggregate, top_k=top_k)
        return Ranking(run, chunk_lists={q.id: [chunk_run.get(q.id, {})] for q in queries}, chunk_run=chunk_run,
                       calls={q.id: 1.0 for q in queries}, stats=dict(self.retriever.stats()))


def as_stage(component: Any, *, aggregate: str = "max") -> Stage:
    """A stage as it is, a chunk-level retriever behind the adapter; anything else is a config error."""
    if isinstance(component, Stage):
        return component
    if isinstance(component, Retriever):
        return DocumentRanker(component, aggregate=aggregate)
    raise TypeError(f"{type(component).__name__} is neither a pipeline stage (index + rank) nor a chunk-level "
                    "retriever (index + search + stats)")


def compose(first: Any, wrappers: Iterable[StageFactory | None] = (), *, aggregate: str = "max") -> Stage:
    """The pipeline ``first -> wrappers[0] -> wrappers[1] ...`` (``None`` entries are skipped)."""
    stage = as_stage(first, aggregate=aggregate)
    for wrap in wrappers:
        if wrap is not None:
            stage = as_stage(wrap(stage), aggregate=aggregate)
    return stage


def sum_stats(rankings: Iterable[Ranking], skip: Sequence[str] = ()) -> dict[str, float]:
    """Counters of several stages added up (shares, listed in ``skip``, are not additive)."""
    total: dict[str, float] = {}
    for r in rankings:
        for k, v in r.stats.items():
            if k not in skip:
                total[k] = total.get(k, 0.0) + v
    return total


def owner_lists(ranking: Ranking, owner: Mapping[str, str], into: dict[str, list[dict[str, float]]]) -> None:
    """Append each query's chunk lists to its owner's (sub-queries -> their question)."""
    for qid, lists in ranking.chunk_lists.items():
        into.setdefault(owner.get(qid, qid), []).extend(lists)


def count(value: float) -> float | int:
    """A call count as logged: an int when whole (``3``, not ``3.0``)."""
    return int(value) if float(value).is_integer() else float(value)
