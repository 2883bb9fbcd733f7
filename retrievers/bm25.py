"""BM25 (Robertson & Zaragoza 2009) behind one retriever with two backends.

``bm25s`` (Lù 2024, default) is the fast sparse implementation; ``rank_bm25`` is the reference. Both
get identical tokens from :class:`retrievers.text.Tokenizer`, and index ``context + text`` of each chunk.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from retrievers.progress import Progress, progress

import json

from chunkers.types import Chunk, Query
from retrievers.types import Run
from retrievers.base import chunks_digest, top_k_of
from retrievers.cache import Cache
from retrievers.errors import RetrieverError
from retrievers.fingerprint import installed_versions
from retrievers.text import Tokenizer
from chunkers.options import Options, number, one_of, optional, string
from retrievers.cache import CACHE_MODES

BM25S_VARIANTS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
RANK_BM25_VARIANTS = {"robertson": "BM25Okapi", "bm25l": "BM25L", "bm25+": "BM25Plus"}
BACKENDS = ("bm25s", "rank_bm25")


class BM25Retriever:
    """``retriever=bm25``. Lucene's BM25 with k1=0.9, b=0.4 reproduces Pyserini's flat BEIR runs."""

    OPTIONS: ClassVar[Options] = {"backend": one_of(*BACKENDS), "k1": number(0), "b": number(0, 1),
                                  "variant": one_of(*BM25S_VARIANTS), "stemmer": optional(string),
                                  "stopwords": optional(string), "bm25s_backend": one_of("numpy", "numba"),
                                  "cache_mode": one_of(*CACHE_MODES)}

    def __init__(
        self,
        *,
        backend: str = "bm25s",
        k1: float = 0.9,
        b: float = 0.4,
        variant: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | None = "en",
        delta: float = 0.5,
        n_threads: int = 0,
        bm25s_backend: str = "numpy",
        cache_dir: str | None = None,
        cache_mode: str = "use",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"retriever.backend must be one of {'|'.join(BACKENDS)}, got {backend!r}")
        allowed = BM25S_VARIANTS if backend == "bm25s" else tuple(RANK_BM25_VARIANTS)
        if variant not in allowed:
            raise ValueError(
                f"retriever.variant {variant!r} is not available with retriever.backend={backend}; "
                f"allowed: {'|'.join(allowed)}"
            )
        self.backend, self.k1, self.b, self.variant, self.delta = backend, float(k1), float(b), variant, delta
        self.n_threads = n_threads
        if bm25s_backend not in ("numpy", "numba"):
            raise ValueError(f"retriever.bm25s_backend must be numpy|numba, got {bm25s_backend!r}")
        self.bm25s_backend = bm25s_backend
        self.tokenizer = Tokenizer(stemmer=stemmer, stopwords=stopwords)
        self.cache = Cache(cache_dir, cache_mode) if cache_dir else Cache(".", "off")
        self.index_builds = 0
        self._ids: list[str] = []
        self._chunks: Sequence[Chunk] = ()
        self._digest = ""
        self._model = None

    def settings(self) -> dict[str, object]:
        """Everything a BM25 run depends on besides chunks and queries (its cache key)."""
        return {"backend": self.backend, "k1": self.k1, "b": self.b, "variant": self.variant, "delta": self.delta,
                **({"bm25s_backend": "numba"} if self.backend == "bm25s" and self.bm25s_backend == "numba" else {}),
                "tokenizer": self.tokenizer.settings(), "versions": installed_versions("bm25s", "rank-bm25", "PyStemmer")}

    def index(self, chunks: Sequence[Chunk]) -> None:
        """Remember the chunks; the index itself is built on the first search that misses the cache."""
        if not chunks:
            raise ValueError("cannot index an empty corpus")
        self._ids = [c.id for c in chunks]
        self._chunks = chunks
        self._digest = chunks_digest(chunks)
        self._model = None

    def _build(self) -> None:
        if self.backend == "bm25s":
            key = Cache.key({"what": "bm25s-index", "chunks": self._digest, "settings": {
                k: v for k, v in self.settings().items() if k != "bm25s_backend"}})
            with self.cache.claim("bm25_index", key):  # parallel workers build an index once
                hit = self.cache.get("bm25_index", key)
                if hit is None:
                    self._build_index()
                    self.cache.put("bm25_index", key, lambda folder: _save(self._model, folder),
                                   {"what": "bm25s index (scipy CSC arrays + vocab), loaded memory-mapped",
                                    "chunks": len(self._ids), **self.settings()})
                    return
            import logging

            import bm25s

            logging.getLogger("bm25s").setLevel(logging.WARNING)
            try:
                self._model = bm25s.BM25.load(str(hit), mmap=True, show_progress=False,
                                              override_params={"backend": self.bm25s_backend})
            except TypeError:  # bm25s before 0.3.x: no show_progress / override_params
                self._model = bm25s.BM25.load(str(hit), mmap=True)
                self._model.backend = self.bm25s_backend
            return
        self._build_index()

    def _build_index(self) -> None:
        chunks = self._chunks
        self.index_builds += 1
        tokens = [self.tokenizer(c.indexed_text) for c in progress(chunks, "bm25: tokenize corpus", "chunks")]
        if not any(tokens):
            raise RetrieverError(f"bm25: none of the {len(chunks)} chunks has a term to index (every document is empty, "
                                 "or holds only stopwords and punctuation); check the corpus's text field, or "
                                 "retriever.stopwords=null")
        if self.backend == "bm25s":
            import logging

            import bm25s

            logging.getLogger("bm25s").setLevel(logging.WARNING)
            model = bm25s.BM25(k1=self.k1, b=self.b, method=self.variant, delta=self.delta, backend=self.bm25s_backend)
            model.index(tokens, show_progress=False)
        else:
            import rank_bm25

            cls = getattr(rank_bm25, RANK_BM25_VARIANTS[self.variant])
            kwargs = {"k1": self.k1, "b": self.b}
            if self.variant != "robertson":
                kwargs["delta"] = self.delta
            # rank_bm25 cannot score an empty token list; give empty documents a placeholder token.
            model = cls([t or ["\x00"] for t in tokens], **kwargs)
        self._model = model

    def search(self, queries: Sequence[Query], *, top_k: int) -> Run:
        if not self._ids:
            raise RuntimeError("index() must be called before search()")
        key = Cache.key({"what": "bm25-run", "chunks": self._digest, "settings": self.settings(), "top_k": int(top_k),
                         "queries": [[q.id, q.text] for q in queries]})
        cached = self.cache.load_json("runs", key, "run.json")
        if cached is not None:
            return cached
        if self._model is None:
            self._build()
        run = self._search(queries, top_k)
        self.cache.put("runs", key, lambda folder: (folder / "run.json").write_text(json.dumps(run), encoding="utf-8"),
                       {"what": "chunk-level BM25 run", "queries": len(queries), "top_k": int(top_k), **self.settings()})
        return run

    def stats(self) -> dict[str, float]:
        return {"index_builds": self.index_builds, "cache_hits": self.cache.hits, "cache_misses": self.cache.misses}

    def _search(self, queries: Sequence[Query], top_k: int) -> Run:
        k = min(top_k, len(self._ids))
        run: Run = {}
        if self.backend == "bm25s":
            vocab = self._model.vocab_dict
            token_ids = [[vocab[t] for t in self.tokenizer(q.text) if t in vocab] for q in queries]
            todo = [i for i, ids in enumerate(token_ids) if ids]
            run = {q.id: {} for q in queries}
            step = 2000  # queries per retrieve call: progress between calls
            with Progress(len(todo), "bm25: search", "queries") as bar:
                for start in range(0, len(todo), step):
                    part = todo[start:start + step]
                    docs, scores = self._model.retrieve(
                        [token_ids[i] for i in part], k=k, show_progress=False,
                        n_threads=self.n_threads, return_as="tuple", backend_selection=self.bm25s_backend,
                    )
                    for row, i in enumerate(part):
                        run[queries[i].id] = top_k_of(
                            {self._ids[d]: float(s) for d, s in zip(docs[row], scores[row]) if s > 0}
                        )
                    bar.update(len(part))
            return run
        for q in progress(queries, "bm25 (rank_bm25): search", "queries"):
            tokens = self.tokenizer(q.text)
            if not tokens:
                run[q.id] = {}
                continue
            scores = self._model.get_scores(tokens)
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            run[q.id] = top_k_of({self._ids[d]: float(scores[d]) for d in top if scores[d] > 0})
        return run


def _save(model, folder) -> None:
    """``BM25.save`` quietly (``show_progress`` exists from bm25s 0.3)."""
    try:
        model.save(str(folder), show_progress=False)
    except TypeError:
        model.save(str(folder))
