"""The retrieval data model: runs, judgments, and what a pipeline stage returns.

Runs and qrels stay plain dicts (what ranx, BEIR, pytrec_eval and MTEB all accept); :class:`Ranking` is the
one result type of a stage (:class:`retrievers.stage.Stage`) and declares everything a consumer reads from
it — nothing is probed with ``getattr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: ``{query_id: {doc_id: score}}`` (or chunk ids for a chunk-level run).
Run = dict[str, dict[str, float]]
#: ``{query_id: {doc_id: relevance}}``; a document is relevant when its relevance is > 0.
Qrels = dict[str, dict[str, int]]


@dataclass
class Ranking:
    """What a stage returns for one batch of queries.

    * ``run`` — per query, documents in canonical order (score descending, ties by id descending);
    * ``chunk_lists`` — per query, the chunk rankings the document ranking was built from (one per base
      search: a hybrid has one per base retriever, a decomposition one per sub-query);
    * ``chunk_run`` — per query, *the* chunk ranking when the stage has a single one (a chunk-level
      retriever folded to documents, a reranker that scored chunks); ``None`` when the stage combines
      several lists, and consumers derive the chunk view from ``run`` and ``chunk_lists``;
    * ``records`` — per query, what the stage decided (route and rules, sub-queries, decomposed or not);
    * ``calls`` — per query, base-retriever searches it cost (a hybrid search counts one per base);
    * ``stats`` — the stage's counters so far (encoder calls, index builds, cache hits, model calls) and
      shares over this batch (route shares, decomposed share).
    """

    run: Run
    chunk_lists: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    chunk_run: Run | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    def calls_mean(self) -> float:
        """Base-retriever searches per query of this batch (1.0 for an empty batch)."""
        return sum(self.calls.values()) / len(self.calls) if self.calls else 1.0
