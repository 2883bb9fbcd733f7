"""The chunk-level retriever protocol and the ranking helpers every stage shares.

A :class:`Retriever` (BM25, dense) indexes chunks and answers with chunk-level runs; a pipeline stage
(:mod:`retrievers.stage`) ranks documents. :func:`aggregate_to_docs` is the one chunk -> document fold;
:class:`retrievers.stage.DocumentRanker` is the one adapter that applies it.
"""

from __future__ import annotations

import hashlib

from typing import Literal, Mapping, Protocol, Sequence, runtime_checkable

from chunkers.types import Chunk, Query
from retrievers.types import Run

from chunkers.base import AGGREGATES, check_aggregate  # noqa: F401 - ``chunker.aggregate``, defined once

Aggregate = Literal["max", "sum", "first"]


@runtime_checkable
class Retriever(Protocol):
    """Indexes chunks once, then answers many searches with chunk-level runs; ``stats`` are its counters
    (encoder calls, index builds, cache hits)."""

    def index(self, chunks: Sequence[Chunk]) -> None: ...

    def search(self, queries: Sequence[Query], *, top_k: int) -> Run: ...

    def stats(self) -> dict[str, float]: ...


def top_k_of(scores: Mapping[str, float], k: int | None = None) -> dict[str, float]:
    """The ``k`` best entries (all when ``k`` is None) in the canonical order.

    Canonical order is score descending, ties broken by id descending — trec_eval's rule — so that
    ranx (which keeps insertion order among ties) and trec_eval on the written TREC file agree.
    """
    ranked = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return dict(ranked if k is None else ranked[:k])


def canonical_run(run: Run, k: int | None = None) -> Run:
    """Every query's ranking in canonical order, truncated to ``k``; a new dict."""
    return {qid: top_k_of(hits, k) for qid, hits in run.items()}


def aggregate_to_docs(
    run: Run, chunk_to_doc: Mapping[str, str], *, mode: Aggregate = "max", top_k: int | None = None
) -> Run:
    """Fold a chunk-level run into a document-level run (PyTerrier's ``max_passage`` idea).

    ``max``: a document scores its best chunk; ``sum``: the sum of its retrieved chunks;
    ``first``: the score of its best-ranked chunk that comes first in the document (lowest chunk
    number among the retrieved ones). Returns a new run; the input is not modified.
    """
    check_aggregate(mode)
    out: Run = {}
    for qid, hits in run.items():
        docs: dict[str, float] = {}
        first_pos: dict[str, int] = {}
        for cid, score in hits.items():
            did = chunk_to_doc[cid]
            if mode == "sum":
                docs[did] = docs.get(did, 0.0) + score
            elif mode == "max":
                docs[did] = max(docs.get(did, float("-inf")), score)
            else:
                pos = int(cid.rsplit("#", 1)[1]) if "#" in cid else 0
                if did not in first_pos or pos < first_pos[did]:
                    first_pos[did] = pos
                    docs[did] = score
        out[qid] = top_k_of(docs, top_k)
    return out


def chunks_digest(chunks: Sequence[Chunk]) -> str:
    """Content hash of what gets embedded: each chunk's id and indexed text, in order."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.id.encode("utf-8"))
        h.update(b"\x00")
        h.update(c.indexed_text.encode("utf-8"))
        h.update(b"\x01")
    return h.hexdigest()


def chunks_per_doc(n_chunks: int, n_docs: int) -> int:
    """Chunks per document (rounded, >= 1): a chunk-level search retrieves ``top_k`` times this many chunks,
    so that folding them into documents still fills ``top_k`` documents."""
    return max(1, round(n_chunks / max(1, n_docs)))


def chunk_view(doc_ranking: Mapping[str, float], chunk_lists: Sequence[Mapping[str, float]],
               doc_chunks: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """The chunk-level ranking a document-level result implies (for span metrics and the audit): documents
    in their fused order; within a document, its chunks that any underlying chunk list retrieved, by their
    best rank in those lists (scale-free: lists come from different retrievers); a document none of whose
    chunks was retrieved contributes its first chunk. Scores are descending ranks."""
    best: dict[str, int] = {}
    for ranking in chunk_lists:
        for rank, cid in enumerate(top_k_of(ranking), 1):
            if rank < best.get(cid, 1 << 30):
                best[cid] = rank
    order: list[str] = []
    for doc in top_k_of(doc_ranking):
        chunks = doc_chunks.get(doc, ())
        hit = sorted((c for c in chunks if c in best), key=lambda c: (best[c], c))
        order.extend(hit or list(chunks[:1]))
    return {c: float(len(order) - i) for i, c in enumerate(order)}
