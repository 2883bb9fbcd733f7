"""Reranking stages: re-score the top ``top_n`` documents of the stage before with a neural model.

The pipelines users know as "BM25 + CE" (BEIR), ``bm25 >> reranker`` (PyTerrier) and MTEB's reranking
tasks: a cheap first stage finds candidates, a model that reads query and passage together re-orders them.

* ``reranker=cross_encoder`` — a sentence-transformers ``CrossEncoder`` scores each (query, passage)
  pair; the usual choice is ``cross-encoder/ms-marco-MiniLM-L-6-v2`` (Reimers & Gurevych; MS MARCO
  passage ranking), or any local folder;
* ``reranker=bi_encoder`` — a sentence-transformers bi-encoder re-scores the candidates by cosine
  similarity (the packaged all-MiniLM-L6-v2 by default, so it runs offline).

Candidates are chunks: for each of the ``top_n`` documents, the chunks of it that the stage before
retrieved (its chunk lists), or its first chunk when none was; with ``chunker=none`` a chunk is the
document. Chunk scores fold into document scores with the chunk -> document fold
(:func:`retrievers.base.aggregate_to_docs`, ``chunker.aggregate``). Documents ranked below ``top_n`` keep
their order after the reranked ones.

Scores are cached content-addressed (:mod:`retrievers.cache`): the key hashes every (query text,
candidate text) pair of the batch, the model's identity (weights hash for local folders, hub id and
revision otherwise) and the scoring settings, so a warm re-run makes no model call.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Sequence

import numpy as np

from chunkers.types import Chunk, Query
from retrievers.base import aggregate_to_docs, check_aggregate, chunk_view, top_k_of
from retrievers.cache import Cache
from retrievers.encoders import SentenceTransformerEncoder, resolve_source, shared_model
from retrievers.infrastructure.fingerprint import installed_versions
from retrievers.stage import Stage, as_stage
from retrievers.types import Ranking, Run
from chunkers.options import Options, device, integer, one_of, optional, string
from retrievers.backends import PRECISIONS
from retrievers.dense import DenseRetriever


class Reranker:
    """Base class: ``score(pairs) -> scores`` is the model; this class does candidates, cache and folding."""

    OPTIONS: ClassVar[Options] = {"model": string, "top_n": integer(1), "batch_size": integer(1),
                                  "max_length": optional(integer(1)), "device": device}
    REQUIRES: ClassVar[tuple[str, ...]] = ("sentence_transformers", "torch")

    kind = "reranker"

    def __init__(self, inner: Any = None, *, model: str, top_n: int = 100, batch_size: int = 32,
                 max_length: int | None = None, device: str = "cpu", revision: str | None = None,
                 aggregate: str = "max", cache_dir: str | None = None, cache_mode: str = "use") -> None:
        if inner is None:
            raise ValueError("reranker: the stage to rerank is missing")
        if int(top_n) < 1 or int(batch_size) < 1:
            raise ValueError(f"reranker.top_n and reranker.batch_size must be >= 1, got {top_n} and {batch_size}")
        self.inner: Stage = as_stage(inner, aggregate=aggregate)
        self.name, self.top_n, self.batch_size = str(model), int(top_n), int(batch_size)
        self.max_length = int(max_length) if max_length else None
        self.device, self.revision, self.aggregate = device, revision, check_aggregate(aggregate)
        self.cache = Cache(cache_dir, cache_mode) if cache_dir else Cache(".", "off")
        self.source = resolve_source(self.name, revision, key="reranker.model")  # fails at once when offline
        self.model_calls = 0  # (query, candidate) pairs scored by the model (0 on a warm run)
        self.pairs = 0        # (query, candidate) pairs reranked, cached or not
        self._chunks: dict[str, Chunk] = {}
        self._doc_chunks: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ model
    def identity(self) -> dict[str, Any]:
        return {"reranker": self.kind, "model": self.name, "source": self.source, "max_length": self.max_length,
                "versions": installed_versions("sentence-transformers", "transformers", "torch")}

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        raise NotImplementedError

    def cached_scores(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        h = hashlib.sha256()
        for q, t in pairs:
            h.update(q.encode("utf-8"))
            h.update(b"\x00")
            h.update(t.encode("utf-8"))
            h.update(b"\x01")
        key = Cache.key({"what": "rerank-scores", "pairs": h.hexdigest(), "model": self.identity()})
        self.pairs += len(pairs)
        with self.cache.claim("rerank", key):
            hit = self.cache.get("rerank", key)
            if hit is not None:
                return np.load(hit / "scores.npy")
            scores = np.asarray(self.score(pairs), dtype=np.float64).reshape(-1)
            self.model_calls += len(pairs)
            self.cache.put("rerank", key, lambda folder: np.save(folder / "scores.npy", scores),
                           {"what": "reranker scores, row i = pair i", "pairs": len(pairs), "model": self.identity()})
        return scores

    # ------------------------------------------------------------------ stage
    def index(self, chunks: Sequence[Chunk]) -> None:
        self.inner.index(chunks)
        self._chunks = {c.id: c for c in chunks}
        self._doc_chunks = {}
        for c in chunks:
            self._doc_chunks.setdefault(c.doc_id, []).append(c.id)

    def candidates(self, before: Ranking, qid: str) -> list[str]:
        """Chunk ids to score for one query: the chunks behind its top ``top_n`` documents."""
        docs = dict(list(top_k_of(before.run.get(qid, {})).items())[: self.top_n])
        lists = before.chunk_lists.get(qid, [])
        if before.chunk_run is not None and not lists:
            lists = [before.chunk_run.get(qid, {})]
        return list(chunk_view(docs, lists, self._doc_chunks))

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        before = self.inner.rank(queries, top_k=max(top_k, self.top_n))
        cands = {q.id: self.candidates(before, q.id) for q in queries}
        pairs = [(q.text, self._chunks[cid].indexed_text) for q in queries for cid in cands[q.id]]
        scores = iter(self.cached_scores(pairs).tolist()) if pairs else iter(())
        chunk_run: Run = {q.id: top_k_of({cid: next(scores) for cid in cands[q.id]}) for q in queries}
        c2d = {cid: self._chunks[cid].doc_id for lst in cands.values() for cid in lst}
        reranked = aggregate_to_docs(chunk_run, c2d, mode=self.aggregate)
        run: Run = {}
        for q in queries:
            head = reranked.get(q.id, {})
            ranked = list(head.items())
            floor = min(head.values(), default=0.0)
            rest = [d for d in top_k_of(before.run.get(q.id, {})) if d not in head]
            ranked += [(d, floor - 1.0 - i) for i, d in enumerate(rest)]  # below the reranked ones, same order
            run[q.id] = dict(ranked[:top_k])
        stats = {**before.stats, "rerank_pairs": float(self.pairs), "rerank_model_calls": float(self.model_calls),
                 "rerank_cache_hits": float(self.cache.hits), "rerank_cache_misses": float(self.cache.misses)}
        return Ranking(run, chunk_lists={q.id: [chunk_run[q.id]] for q in queries}, chunk_run=chunk_run,
                       records=before.records, calls=before.calls, stats=stats)


class CrossEncoderReranker(Reranker):
    """``reranker=cross_encoder``: a sentence-transformers ``CrossEncoder`` reads each (query, passage)."""

    kind = "cross_encoder"

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        import sys

        model = shared_model("cross", self.source, device=self.device, revision=self.revision,
                             max_length=self.max_length, key="reranker.model", name=self.name)
        return np.asarray(model.predict([list(p) for p in pairs], batch_size=self.batch_size,
                                        show_progress_bar=sys.stderr.isatty() and len(pairs) > self.batch_size))


class BiEncoderReranker(Reranker):
    """``reranker=bi_encoder``: cosine similarity of query and passage embeddings from a sentence-transformers
    bi-encoder. Passage embeddings are the corpus embeddings of :class:`retrievers.dense.DenseRetriever` with
    the same model and settings — the same content-addressed cache entry — so a corpus a dense or hybrid run
    has encoded is not encoded again, and reranking a second first stage costs only the queries. (With the
    default MiniLM this is dense retrieval restricted to the first stage's candidates.)"""

    kind = "bi_encoder"
    #: its encoder runs on torch: the precisions torch takes (fp16 on CUDA)
    OPTIONS: ClassVar[Options] = {"precision": one_of("auto", *PRECISIONS["torch"])}

    def __init__(self, inner: Any = None, *, engine: Any = None, precision: str = "auto", **settings: Any) -> None:
        super().__init__(inner, **settings)
        # the corpus is encoded shard by shard by the engine group's engine (engine=local|ray|slurm), as dense's is;
        # precision as every dense stage's (encoder_precision)
        encoder = SentenceTransformerEncoder(self.name, batch_size=self.batch_size, device=self.device,
                                             max_seq_length=self.max_length, revision=self.revision, precision=precision)
        self._dense = DenseRetriever(encoder=encoder, cache_dir=settings.get("cache_dir"),
                                     cache_mode=settings.get("cache_mode", "use"), engine=engine)
        self._text_rows: dict[str, int] = {}  # indexed text -> its row in the corpus embeddings
        self._pending: list[Chunk] | None = None  # chunks whose embeddings are loaded on the first score()

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "encoder": self._dense.encoder.identity()}

    def index(self, chunks: Sequence[Chunk]) -> None:
        super().index(chunks)
        self._text_rows = {}
        for i, c in enumerate(chunks):
            self._text_rows.setdefault(c.indexed_text, i)
        self._pending = list(chunks)

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if self._pending is not None:  # corpus embeddings: from the dense cache, or encoded once
            self._dense.index(self._pending)
            self._pending = None
        emb = self._dense._emb
        queries = list(dict.fromkeys(q for q, _ in pairs))
        qv = np.asarray(self._dense.encoder.encode(queries, kind="query"), dtype=np.float32)
        qi = {q: i for i, q in enumerate(queries)}
        rows = np.fromiter((self._text_rows[t] for _, t in pairs), dtype=np.int64, count=len(pairs))
        order = np.argsort(rows, kind="stable")  # read the memory map in row order
        out = np.empty(len(pairs), dtype=np.float64)
        block = 65536
        for start in range(0, len(pairs), block):
            idx = order[start:start + block]
            vecs = np.asarray(emb[rows[idx]], dtype=np.float32)
            qs = qv[[qi[pairs[i][0]] for i in idx]]
            out[idx] = np.einsum("ij,ij->i", qs, vecs)
        return out

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        ranking = super().rank(queries, top_k=top_k)
        ranking.stats.update({"rerank_encoded_texts": float(self._dense.encoded_texts)})
        return ranking
