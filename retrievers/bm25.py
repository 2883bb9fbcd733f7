"""BM25 (Robertson & Zaragoza 2009) behind one retriever with two backends.

``bm25s`` (Lù 2024, default) is the fast sparse implementation; ``rank_bm25`` is the reference. Both
get identical tokens from :class:`retrievers.text.Tokenizer`, and index ``context + text`` of each chunk.

``language=auto`` (the default) detects each document's language (over its chunks' text) and analyses its chunks
in it (a Snowball stemmer and stopwords; CJK as character bigrams); a query is told apart among the corpus's
languages and analysed in its own. The corpus's language mix is in the retriever's stats (``lang_<code>``). A
corpus the chosen analysis cannot read (``language=en`` over mostly CJK text; documents that yield no terms) is a
warning naming the language, never a silent score of 0.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Sequence

import numpy as np

from retrievers.infrastructure.progress import Progress, progress

import json
import logging
import sys

from chunkers.types import Chunk, Query
from retrievers.types import Run
from retrievers.base import chunks_digest, top_k_of
from retrievers.cache import Cache
from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.fingerprint import installed_versions
from retrievers.text import CJK_LANGUAGES, LANGUAGE_CHOICES, Tokenizer, detect_corpus, language_mix
from chunkers.options import Options, number, one_of, optional, string
from retrievers.cache import CACHE_MODES

BM25S_VARIANTS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
RANK_BM25_VARIANTS = {"robertson": "BM25Okapi", "bm25l": "BM25L", "bm25+": "BM25Plus"}
BACKENDS = ("bm25s", "rank_bm25")
log = logging.getLogger(__name__)


def _warn(msg: str) -> None:
    log.warning(msg)
    print(f"rbench: warning: {msg}", file=sys.stderr, flush=True)


class BM25Retriever:
    """``retriever=bm25``. Lucene's BM25 with k1=0.9, b=0.4 reproduces Pyserini's flat BEIR runs."""

    OPTIONS: ClassVar[Options] = {"backend": one_of(*BACKENDS), "k1": number(0), "b": number(0, 1),
                                  "variant": one_of(*BM25S_VARIANTS), "stemmer": optional(string),
                                  "stopwords": optional(string), "bm25s_backend": one_of("numpy", "numba"),
                                  "language": one_of(*LANGUAGE_CHOICES),
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
        language: str = "auto",
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
        self.tokenizer = Tokenizer(stemmer=stemmer, stopwords=stopwords, language=language)
        self.languages: dict[str, str] = {}  # doc id -> its language (language=auto), made when the index is
        self.mix: dict[str, float] = {}  # the corpus's detected language mix (a sample's, for a fixed language)
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
        self.languages, self.mix = {}, {}

    def _doc_languages(self) -> dict[str, str]:
        """Each document's language, detected over its chunks' text (the first 2,000 characters); queries are then
        told apart among the corpus's languages. ``language=<code>``: that language for every document."""
        if self.languages:
            return self.languages
        if self.tokenizer.language != "auto":
            self.languages = {c.doc_id: self.tokenizer.language for c in self._chunks}
            return self.languages
        texts: dict[str, list[str]] = {}
        for c in self._chunks:
            held = texts.setdefault(c.doc_id, [])
            if sum(map(len, held)) < 2000:
                held.append(c.indexed_text)
        self.languages = detect_corpus({d: " ".join(parts) for d, parts in texts.items()})
        self.mix = language_mix(self.languages)
        self.tokenizer.restrict(self.mix)
        return self.languages

    def _check_analysis(self, tokens: Sequence[list[str]]) -> None:
        """Warn, naming the language, where the analysis cannot read the corpus: ``language=en`` (or another fixed
        language) over documents mostly in another language (CJK text is then one token a run, which a query
        matches only when it repeats the run whole), and documents whose text yields no terms."""
        fixed = self.tokenizer.language
        if fixed != "auto":
            sample = {}
            for c in self._chunks[:: max(1, len(self._chunks) // 500)]:
                sample.setdefault(c.doc_id, c.indexed_text)
            self.mix = mix = language_mix(detect_corpus(sample))
            other = {lang: share for lang, share in mix.items() if lang != fixed}
            if sum(other.values()) >= 0.5:
                shown = ", ".join(f"{lang} {share:.0%}" for lang, share in other.items())
                cjk = [lang for lang in other if lang in CJK_LANGUAGES]
                _warn(f"bm25: retriever.language={fixed} analyses every document as {fixed}, but most are not "
                      f"({shown} of a sample of {len(sample)} documents)"
                      + (f"; {'/'.join(cjk)} text is then one token a run, which a query matches only when it repeats "
                         "the run whole" if cjk else "")
                      + "; retriever.language=auto analyses each document in its own language")
        empty = Counter(self.languages.get(c.doc_id, fixed) for c, t in zip(self._chunks, tokens) if not t and c.text.strip())
        if empty and sum(empty.values()) >= max(1, len(tokens) // 10):
            _warn(f"bm25: {sum(empty.values())} of {len(tokens)} chunks yield no terms for their analysis ("
                  + ", ".join(f"{lang} {n}" for lang, n in empty.most_common()) + "): they cannot be retrieved by BM25")

    def _build(self) -> None:
        if self.backend == "bm25s":
            key = Cache.key({"what": "bm25s-index", "chunks": self._digest, "settings": {
                k: v for k, v in self.settings().items() if k != "bm25s_backend"}})
            with self.cache.claim("bm25_index", key):  # parallel workers build an index once
                hit = self.cache.get("bm25_index", key)
                if hit is None:
                    self._build_index()
                    self.cache.put("bm25_index", key, lambda folder: _save(self._model, folder, self.languages),
                                   {"what": "bm25s index (scipy CSC arrays + vocab), loaded memory-mapped",
                                    "chunks": len(self._ids), **self.settings()})
                    return
            saved = hit / LANGUAGES_FILE
            if self.tokenizer.language == "auto" and saved.is_file():
                self.languages = json.loads(saved.read_text(encoding="utf-8"))
                self.mix = language_mix(self.languages)
                self.tokenizer.restrict(self.mix)
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
        languages = self._doc_languages()
        tokens = [self.tokenizer(c.indexed_text, languages.get(c.doc_id)) if self.tokenizer.language != "en" else
                  self.tokenizer(c.indexed_text) for c in progress(chunks, "bm25: tokenize corpus", "chunks")]
        self._check_analysis(tokens)
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
        mix = {f"lang_{lang}": share for lang, share in self.mix.items()}
        return {"index_builds": self.index_builds, "cache_hits": self.cache.hits, "cache_misses": self.cache.misses, **mix}

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


LANGUAGES_FILE = "languages.json"


def _save(model, folder, languages: dict[str, str] | None = None) -> None:
    """``BM25.save`` quietly (``show_progress`` exists from bm25s 0.3), with the documents' languages beside it."""
    try:
        model.save(str(folder), show_progress=False)
    except TypeError:
        model.save(str(folder))
    if languages:
        (folder / LANGUAGES_FILE).write_text(json.dumps(languages), encoding="utf-8")
