"""Hybrid retrieval: several base retrievers, their chunk runs folded to documents, then fused."""

from __future__ import annotations

from typing import Mapping, Sequence

from chunkers.types import Chunk, Query, Run
from retrievers.base import Retriever, aggregate_to_docs, chunks_per_doc
from retrievers.fusion import fuse


class HybridRetriever:
    """``retriever=hybrid``: fuses doc-level runs of ``retrievers`` (default bm25 + dense) with ranx.

    Base retrievers keep their own caches, so a fusion sweep re-encodes and re-indexes nothing once the
    base runs exist. Its runs are already document-level (``returns_docs``).
    """

    returns_docs = True

    def __init__(self, *, retrievers: Mapping[str, Retriever], fusion: str = "wsum", norm: str | None = "min-max",
                 weights: Sequence[float] | None = None, rrf_k: int = 60, aggregate: str = "max") -> None:
        if len(retrievers) < 2:
            raise ValueError("retriever.retrievers needs at least two base retrievers")
        self.retrievers = dict(retrievers)
        self.fusion, self.norm, self.rrf_k, self.aggregate = fusion, norm, int(rrf_k), aggregate
        self.weights = [float(w) for w in weights] if weights is not None else None
        if self.weights is not None and len(self.weights) != len(self.retrievers):
            raise ValueError(f"retriever.weights needs {len(self.retrievers)} values "
                             f"(one per retriever: {', '.join(self.retrievers)}), got {len(self.weights)}")
        self._c2d: dict[str, str] = {}
        self._ratio = 1
        self.chunk_lists: dict[str, list[dict[str, float]]] = {}  # per query: each base's chunk ranking

    def index(self, chunks: Sequence[Chunk]) -> None:
        for r in self.retrievers.values():
            r.index(chunks)
        self._c2d = {c.id: c.doc_id for c in chunks}
        self._ratio = chunks_per_doc(len(chunks), len(set(self._c2d.values())))

    def base_runs(self, queries: Sequence[Query], *, top_k: int) -> dict[str, Run]:
        """Each base retriever's document-level run (cached by the base retrievers)."""
        out = {}
        self.chunk_lists = {q.id: [] for q in queries}
        for name, r in self.retrievers.items():
            chunk_run = r.search(queries, top_k=top_k * self._ratio)
            for q in queries:
                self.chunk_lists[q.id].append(chunk_run.get(q.id, {}))
            out[name] = aggregate_to_docs(chunk_run, self._c2d, mode=self.aggregate, top_k=top_k)
        return out

    def search(self, queries: Sequence[Query], *, top_k: int) -> Run:
        runs = self.base_runs(queries, top_k=top_k)
        return fuse(list(runs.values()), method=self.fusion, norm=self.norm, weights=self.weights, rrf_k=self.rrf_k,
                    top_k=top_k)

    @property
    def leaves(self) -> int:
        """Base-retriever searches per query."""
        return sum(getattr(r, "leaves", 1) for r in self.retrievers.values())

    def stats(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for r in self.retrievers.values():
            for k, v in (r.stats() if hasattr(r, "stats") else {}).items():
                total[k] = total.get(k, 0) + v
        return total
