"""Dense retrieval: an encoder (sentence-transformers by default) + a faiss inner-product index.

Document embeddings, HNSW indexes and runs are cached (:mod:`retrievers.cache`), each keyed by only its
own inputs: the chunks' ids and indexed text, the encoder's identity (model, weights hash or revision,
prefixes, normalisation, library versions), and for indexes and runs their own settings. A second
identical run therefore encodes nothing and builds no index; it does not even load the model.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence as SequenceABC
import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from chunkers.types import Chunk, Query
from retrievers.types import Run
from retrievers.base import chunks_digest, top_k_of
from retrievers.cache import Cache
from retrievers.encoders import Calibrated, Encoder, SentenceTransformerEncoder
from retrievers.infrastructure.fingerprint import installed_versions
from chunkers.options import Options, integer, one_of, optional
from retrievers.engines import Engine, checked_engine, note_interrupted
from retrievers.infrastructure.errors import RetrieverError
from retrievers.cache import CACHE_MODES
from retrievers.infrastructure.progress import Progress
from retrievers import shards

log = logging.getLogger(__name__)
INDEXES = ("flat", "exact", "hnsw", "ivf", "ivfpq")
#: where a dense retriever's index settings sit in the config; messages name its keys from here
INDEX_KEY = "retriever.index"


def _faiss_version() -> str:
    version = installed_versions("faiss-cpu", "faiss-gpu", "faiss").values()
    if version:
        return next(iter(version))
    import faiss

    return getattr(faiss, "__version__", "unknown")


class _IndexedTexts(SequenceABC):
    """The chunks' indexed texts, made only for the items read (calibration samples a few hundred)."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 - int or slice, as a sequence's
        return [c.indexed_text for c in self.chunks[i]] if isinstance(i, slice) else self.chunks[i].indexed_text


ENCODE_BLOCK = 512  # queries per encoder call when searching (progress is reported per block)


@dataclass(frozen=True)
class Index:
    """``retriever.index``: how the chunk embeddings are searched. ``kind``: ``flat`` (exact, faiss), ``exact`` (exact,
    block by block over the memory-mapped embeddings: memory is one block of ``search_block`` rows), ``hnsw``, ``ivf``
    or ``ivfpq`` (approximate: ``ann_check_queries`` queries are also searched exactly, for ``ann_recall_at_<k>``).
    The other keys are the settings of the kind that reads them."""

    OPTIONS: ClassVar[Options] = {
        "kind": one_of(*INDEXES), "search_block": integer(1), "hnsw_m": integer(2), "hnsw_ef_construction": integer(1),
        "hnsw_ef_search": integer(1), "ivf_nlist": optional(integer(1)), "ivf_nprobe": integer(1), "pq_m": integer(1),
        "pq_bits": integer(1, 16), "ann_check_queries": integer(0)}

    kind: str = "flat"
    search_block: int = 65536
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128
    ivf_nlist: int | None = None
    ivf_nprobe: int = 16
    pq_m: int = 16
    pq_bits: int = 8
    ann_check_queries: int = 100

    def __post_init__(self) -> None:
        if self.kind not in INDEXES:
            raise ValueError(f"{INDEX_KEY}.kind must be one of {'|'.join(INDEXES)}, got {self.kind!r}")
        for name in ("search_block", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe", "pq_m",
                     "pq_bits", "ann_check_queries"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "ivf_nlist", int(self.ivf_nlist) if self.ivf_nlist else None)


def regrouped(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A ``DenseRetriever`` config node as runs stored before the ``encoder`` and ``index`` nodes wrote it (flat keys:
    ``model``, ``encoder_backend``, ``precision``, ``index: hnsw``, ``hnsw_m``, ...), regrouped into today's layout so
    a stored run's ``config.yaml`` still builds its retriever (``rbench-audit --run-id``). A node already grouped is
    returned unchanged. The regrouped node gives the same encoder identity and index settings, so the same cache
    entries."""
    node = dict(settings)
    if isinstance(node.get("index"), Mapping) or not ({"model", "index"} & set(node)):
        return node
    index: dict[str, Any] = {"_target_": f"{__name__}.Index", "kind": node.pop("index", "flat")}
    for field in fields(Index):
        if field.name in node:
            index[field.name] = node.pop(field.name)
    flat = {("backend" if key == "encoder_backend" else key): node.pop(key) for key in list(node)
            if key not in ("_target_", "engine", "shard_passages", "cache_dir", "cache_mode", "encoder")}
    encoder = node.pop("encoder", None)  # an encoder object given then took the place of the flat model keys
    if not isinstance(encoder, Mapping):
        params = inspect.signature(SentenceTransformerEncoder).parameters
        encoder = {"_target_": f"{SentenceTransformerEncoder.__module__}.{SentenceTransformerEncoder.__name__}",
                   **{k: v for k, v in flat.items() if k in params}}
    return {**node, "encoder": dict(encoder), "index": index}


class DenseRetriever:
    """``retriever=dense``: an ``encoder`` (``conf/encoder/``; sentence-transformers all-MiniLM-L6-v2 by default) and
    an ``index`` (:class:`Index`: exact inner-product search by default, HNSW with ``index.kind=hnsw``), the corpus
    encoded shard by shard by the ``engine``."""

    OPTIONS: ClassVar[Options] = {"cache_mode": one_of(*CACHE_MODES), "shard_passages": optional(integer(1))}
    #: optional modules it needs beyond the core (``retrievers/infrastructure/extras.py`` names the extra for each); the
    #: encoder declares its own
    REQUIRES: ClassVar[tuple[str, ...]] = ("faiss", "numpy")

    def __init__(
        self, *, encoder: Encoder | None = None, index: Index | str | None = None, engine: Engine | None = None,
        shard_passages: int | None = None, cache_dir: str | None = None, cache_mode: str = "use",
    ) -> None:
        self.encoder: Encoder = encoder if encoder is not None else SentenceTransformerEncoder()
        if cache_dir and getattr(self.encoder, "export_dir", "") is None:  # exported models live in the cache
            self.encoder.export_dir = str(Path(cache_dir) / "models")
        self.spec = index if isinstance(index, Index) else Index(index or "flat")
        self.index_kind = self.spec.kind
        self.hnsw = {"m": self.spec.hnsw_m, "ef_construction": self.spec.hnsw_ef_construction,
                     "ef_search": self.spec.hnsw_ef_search}
        self.ivf = {"nlist": self.spec.ivf_nlist, "nprobe": self.spec.ivf_nprobe}
        self.cache = Cache(cache_dir, cache_mode) if cache_dir else Cache(".", "off")
        self.engine = checked_engine(engine, self.cache)
        self.shard_passages = int(shard_passages) if shard_passages else None
        self.search_block, self.pq = self.spec.search_block, {"m": self.spec.pq_m, "bits": self.spec.pq_bits}
        self.ann_check_queries = self.spec.ann_check_queries
        self.ann_recall: dict[str, float] = {}
        self.encoded_texts = 0   # texts sent to the encoder (0 on a fully cached run)
        self.index_builds = 0    # faiss indexes built (0 on a fully cached run)
        self._ids: list[str] = []
        self._emb: np.ndarray | None = None
        self._emb_key: str | None = None
        self._emb_sum: str | None = None
        self._faiss = None

    # ------------------------------------------------------------------ encoding
    def _encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        self.encoded_texts += len(texts)
        return self.encoder.encode(texts, kind=kind)

    def cached(self, chunks: Sequence[Chunk]) -> bool:
        """Whether these chunks' embeddings are in the cache already (indexing them would encode nothing)."""
        if isinstance(self.encoder, Calibrated) or self.cache.mode != "use" or not chunks:
            return False
        key = Cache.key({"what": "doc-embeddings", "chunks": chunks_digest(chunks), "encoder": self.encoder.identity()})
        return self.cache.get("embeddings", key) is not None

    def index(self, chunks: Sequence[Chunk]) -> None:
        if not chunks:
            raise ValueError("cannot index an empty corpus")
        self._ids = [c.id for c in chunks]
        self._faiss = None
        if self.index_kind in ("ivf", "ivfpq"):
            self._nlist()  # more lists than passages: said now, before anything is encoded
        if isinstance(self.encoder, Calibrated):  # OpenVINO int8: quantised on (a sample of) this corpus
            self.encoder.calibrate(_IndexedTexts(chunks))
        identity = self.encoder.identity()
        self._emb_key = Cache.key({"what": "doc-embeddings", "chunks": chunks_digest(chunks), "encoder": identity})
        with self.cache.claim("embeddings", self._emb_key):  # parallel workers encode a corpus once
            hit = self.cache.get("embeddings", self._emb_key)
            if hit is not None:
                self._emb = np.load(hit / "embeddings.npy", mmap_mode="r")
                log.debug("dense: %d chunk embeddings from cache %s", len(self._ids), hit)  # a warm run prints nothing (RBENCH_VERBOSE shows it)
            else:
                self._emb = self._encode_corpus(chunks, identity)
        # what dependent entries (indexes, runs) key on: the embeddings' own checksum, so none outlives them
        self._emb_sum = self.cache.checksum("embeddings", self._emb_key, "embeddings.npy") if self.cache.mode != "off" else None

    def _call_size(self) -> int:
        """Texts per encoder call, fixed per encoder (so the calls, and the vectors, are the same whoever encodes):
        two of its batches, at least 64 — the progress bar moves every few seconds for a transformer on a loaded
        CPU, and a fast static model is not slowed by small calls — and enough to keep a multi-process pool
        (one process per GPU) busy."""
        pool = getattr(getattr(self.encoder, "placement", None), "pool", ()) or ()
        batch = int(getattr(self.encoder, "batch_size", 32))
        return max(shards.STEP, 2 * batch, 4 * batch * len(pool))

    def _encode_corpus(self, chunks: Sequence[Chunk], identity: dict[str, Any]) -> np.ndarray:
        """Encode shard by shard (:mod:`retrievers.shards`): each finished shard is its own cache entry, so an
        interrupted encode resumes from the shards it finished; then the shards are joined into one memory-mapped
        ``.npy`` (never the whole matrix in memory). With ``cache.mode=off`` the shards are kept in memory."""
        n, step = len(chunks), self._call_size()
        plan = shards.plan(chunks, identity, self.shard_passages)
        encode = lambda texts: self._encode(texts, "doc")  # noqa: E731
        if self.cache.mode == "off":
            with Progress(n, "dense: encode corpus", "passages") as bar:
                return np.concatenate([shards.encode_texts(encode, [c.indexed_text for c in chunks[s.start:s.stop]],
                                                           step=step, on_step=bar.update) for s in plan])
        todo = shards.missing(self.cache, plan)
        if len(todo) < len(plan):
            done = n - sum(len(s) for s in todo)
            print(f"rbench: dense: resuming — {len(plan) - len(todo)} of {len(plan)} shards ({done:,} of {n:,} "
                  f"passages) already encoded in {self.cache.dir / shards.KIND}", file=sys.stderr, flush=True)
        if todo:
            try:
                self.engine.run(todo, chunks, cache=self.cache, encode=encode, encoder=self.encoder, identity=identity,
                                step=step)
            except KeyboardInterrupt as err:
                note_interrupted(err, self.cache, plan, shards.EMBEDDINGS, "dense")
                raise
            if self.engine.name != "local":  # encoded elsewhere: counted here
                self.encoded_texts += sum(len(s) for s in todo)
        def write(folder: Path) -> None:
            shards.join(self.cache, plan, self._ids, folder / "embeddings.npy")
            (folder / "ids.json").write_text(json.dumps(self._ids), encoding="utf-8")

        entry = self.cache.put("embeddings", self._emb_key, write, {
            "what": "float32 chunk embeddings, row i = ids.json[i]", "rows": n, "encoder": identity,
            "chunks_digest": chunks_digest(chunks), "shards": len(plan), "step": step})
        shards.drop(self.cache, plan)
        return np.load(entry / "embeddings.npy", mmap_mode="r")

    # ------------------------------------------------------------------ index
    def _index_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"index": self.index_kind, "faiss": _faiss_version()}
        if self.index_kind == "hnsw":
            settings.update(self.hnsw)
        elif self.index_kind == "ivf":
            settings.update({"nlist": self._nlist(), "train": "sample of 64 x nlist rows, seed 0"})
        elif self.index_kind == "ivfpq":
            settings.update({"nlist": self._nlist(), "pq": dict(self.pq), "train": "sample, seed 0"})
        return settings

    def _search_settings(self) -> dict[str, Any]:
        """Index settings plus search-time ones (what a run depends on)."""
        settings = self._index_settings()
        if self.index_kind in ("ivf", "ivfpq"):
            settings["nprobe"] = self.ivf["nprobe"]
        return settings

    def _nlist(self) -> int:
        """IVF lists: ``index.ivf_nlist``, or ~4 sqrt(n) (faiss's guideline), at most n / 39 so each list trains. More lists
        than passages cannot be trained (faiss stops on a C++ assertion): an error naming the key, before any work."""
        n = len(self._ids)
        asked = self.ivf["nlist"]
        if asked and asked > n:
            raise RetrieverError(f"{INDEX_KEY}.ivf_nlist={asked}: more IVF lists than the {n} passages to index (each list "
                                 f"needs passages to train on; at most {max(1, n // 39)} trains well, or leave it unset "
                                 "for ~4 sqrt(n))")
        return asked or max(1, min(int(4 * n ** 0.5), n // 39 or 1))

    def faiss_index(self):
        """The faiss index over the chunk embeddings, built (or for HNSW loaded from cache) on first use."""
        if self._faiss is not None:
            return self._faiss
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)
        import faiss

        dim = int(self._emb.shape[1])
        if self.index_kind == "exact":
            return None  # searched block by block over the memory-mapped embeddings (:meth:`exact_top_k`)
        if self.index_kind == "flat":
            self.index_builds += 1
            index = faiss.IndexFlatIP(dim)
            self._add(index)
        else:
            key = Cache.key({"what": "faiss-index", "embeddings": self._emb_key, "embeddings_sha256": self._emb_sum,
                             **self._index_settings()})
            with self.cache.claim("index", key):
                hit = self.cache.get("index", key)
                if hit is not None:
                    index = faiss.read_index(str(hit / "index.faiss"))
                else:
                    self.index_builds += 1
                    index = self._build_ann(faiss, dim)
                    self.cache.put("index", key, lambda folder: faiss.write_index(index, str(folder / "index.faiss")),
                                   {"what": f"faiss {self.index_kind} index", "embeddings_key": self._emb_key,
                                    **self._index_settings()})
            if self.index_kind == "hnsw":
                index.hnsw.efSearch = self.hnsw["ef_search"]
            else:
                index.nprobe = self.ivf["nprobe"]
        self._faiss = index
        return index

    def _add(self, index: Any, block: int = 65536) -> None:
        """Add the (memory-mapped) embeddings in blocks: never a second full copy in memory."""
        for i in range(0, len(self._ids), block):
            index.add(np.ascontiguousarray(self._emb[i:i + block], dtype=np.float32))

    def _build_ann(self, faiss: Any, dim: int) -> Any:
        if self.index_kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw["m"], faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.hnsw["ef_construction"]
        else:
            nlist = self._nlist()
            if self.index_kind == "ivfpq":  # compressed codes: pq_m sub-vectors of pq_bits each (memory, not exactness)
                m = self.pq["m"] if dim % self.pq["m"] == 0 else next(d for d in range(min(self.pq["m"], dim), 0, -1)
                                                                       if dim % d == 0)
                index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, self.pq["bits"], faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            need = max(64 * nlist, (2 ** self.pq["bits"]) * 39 if self.index_kind == "ivfpq" else 0)
            rows = np.random.default_rng(0).choice(len(self._ids), size=min(len(self._ids), need), replace=False)
            index.train(np.ascontiguousarray(self._emb[np.sort(rows)], dtype=np.float32))
        self._add(index)
        return index

    # ------------------------------------------------------------------ search
    def search(self, queries: Sequence[Query], *, top_k: int) -> Run:
        if self._emb is None:
            raise RuntimeError("index() must be called before search()")
        if not queries:
            return {}
        key = Cache.key({"what": "run", "embeddings": self._emb_key, "embeddings_sha256": self._emb_sum,
                         "index": self._search_settings(), "top_k": int(top_k),
                         "queries": [[q.id, q.text] for q in queries], "encoder": self.encoder.identity()})
        cached = self.cache.load_json("runs", key, "run.json")
        if cached is not None:
            return cached

        index = self.faiss_index()
        k = min(int(top_k), len(self._ids))
        run: Run = {}
        checked: list[float] = []
        with Progress(len(queries), "dense: search", "queries") as bar:  # encode + search, a block at a time
            for start in range(0, len(queries), ENCODE_BLOCK):
                part = queries[start:start + ENCODE_BLOCK]
                qv = np.ascontiguousarray(self._encode([q.text for q in part], "query"), dtype=np.float32)
                scores, rows = self.exact_top_k(qv, k) if index is None else index.search(qv, k)
                for q, srow, irow in zip(part, scores, rows):
                    run[q.id] = top_k_of({self._ids[i]: float(s) for s, i in zip(srow, irow) if i >= 0})
                if index is not None and self.index_kind != "flat" and len(checked) < self.ann_check_queries:
                    m = min(len(part), self.ann_check_queries - len(checked))  # an approximate index: recall@k vs exact
                    _, exact = self.exact_top_k(qv[:m], k)
                    checked += [len(set(a[a >= 0]) & set(e)) / max(1, len(e)) for a, e in zip(rows[:m], exact)]
                bar.update(len(part))
        if checked:
            self.ann_recall = {f"ann_recall_at_{k}": float(np.mean(checked)), "ann_checked_queries": float(len(checked))}
        self.cache.put("runs", key, lambda folder: (folder / "run.json").write_text(json.dumps(run), encoding="utf-8"),
                       {"what": "chunk-level run", "queries": len(queries), "top_k": int(top_k),
                        "embeddings_key": self._emb_key, "index": self._search_settings()})
        return run

    def exact_top_k(self, qv: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner-product top-k over the memory-mapped embeddings, ``search_block`` rows at a time: each
        block's candidates (every row tied with its k-th score included) merged into the running top-k, ties
        broken by the lower row. Memory is one block, whatever the corpus's size; the result does not depend on
        the block size (tested against one block, and against faiss's flat index up to float ties)."""
        n, nq = len(self._ids), len(qv)
        best_s = [np.empty(0, dtype=np.float32) for _ in range(nq)]
        best_i = [np.empty(0, dtype=np.int64) for _ in range(nq)]
        for start in range(0, n, self.search_block):
            block = np.asarray(self._emb[start:start + self.search_block], dtype=np.float64)
            # float64 sums rounded to float32: a row's score does not depend on the shape of the block it sits in
            scores = (qv.astype(np.float64) @ block.T).astype(np.float32)
            kk = min(k, scores.shape[1])
            kth = np.partition(scores, scores.shape[1] - kk, axis=1)[:, scores.shape[1] - kk]
            for r in range(nq):
                cand = np.flatnonzero(scores[r] >= kth[r])
                s_all = np.concatenate([best_s[r], scores[r, cand]])
                i_all = np.concatenate([best_i[r], cand + start])
                order = np.lexsort((i_all, -s_all))[:k]
                best_s[r], best_i[r] = s_all[order], i_all[order]
        return np.stack(best_s), np.stack(best_i)

    def stats(self) -> dict[str, float]:
        return {**self.ann_recall, "encoded_texts": self.encoded_texts, "index_builds": self.index_builds,
                "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
                "cache_quarantined": self.cache.quarantined}
