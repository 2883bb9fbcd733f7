"""Hybrid retrieval: several base retrievers ranked to documents (through the chunk -> document adapter),
then fused."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping, Sequence

from chunkers.types import Chunk, Query
from retrievers.fusion import check_fusion, fuse
from retrievers.stage import Stage, as_stage, sum_stats
from retrievers.types import Ranking, Run
from chunkers.options import Options, integer, one_of
from retrievers.fusion import METHODS, NORMS
from chunkers.base import AGGREGATES


class HybridRetriever:
    """``retriever=hybrid``: fuses the document rankings of ``retrievers`` (default bm25 + dense) with ranx.

    Each base is a stage (a chunk-level retriever goes behind :class:`retrievers.stage.DocumentRanker`);
    bases keep their own caches, so a fusion sweep re-encodes and re-indexes nothing once the base runs
    exist. One hybrid search costs one base search per base retriever.
    """

    OPTIONS: ClassVar[Options] = {"fusion": one_of(*METHODS), "norm": one_of(*NORMS, None), "rrf_k": integer(1),
                                  "aggregate": one_of(*AGGREGATES)}

    def __init__(self, *, retrievers: Mapping[str, Any], fusion: str = "wsum", norm: str | None = "min-max",
                 weights: Sequence[float] | None = None, rrf_k: int = 60, aggregate: str = "max") -> None:
        if len(retrievers) < 2:
            raise ValueError("retriever.retrievers needs at least two base retrievers")
        check_fusion(fusion, norm)
        self.stages: dict[str, Stage] = {name: as_stage(r, aggregate=aggregate) for name, r in retrievers.items()}
        self.fusion, self.norm, self.rrf_k = fusion, norm, int(rrf_k)
        self.weights = [float(w) for w in weights] if weights is not None else None
        if self.weights is not None and len(self.weights) != len(self.stages):
            raise ValueError(f"retriever.weights needs {len(self.stages)} values "
                             f"(one per retriever: {', '.join(self.stages)}), got {len(self.weights)}")

    def index(self, chunks: Sequence[Chunk]) -> None:
        for stage in self.stages.values():
            stage.index(chunks)

    def base_rankings(self, queries: Sequence[Query], *, top_k: int) -> dict[str, Ranking]:
        """Each base's document ranking (cached by the base retrievers)."""
        return {name: stage.rank(queries, top_k=top_k) for name, stage in self.stages.items()}

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        bases = self.base_rankings(queries, top_k=top_k)
        run: Run = fuse([b.run for b in bases.values()], method=self.fusion, norm=self.norm, weights=self.weights,
                        rrf_k=self.rrf_k, top_k=top_k) if queries else {}
        lists = {q.id: [lst for b in bases.values() for lst in b.chunk_lists.get(q.id, [])] for q in queries}
        calls = {q.id: sum(b.calls.get(q.id, 1.0) for b in bases.values()) for q in queries}
        return Ranking(run, chunk_lists=lists, calls=calls, stats=sum_stats(bases.values()))
