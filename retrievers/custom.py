"""Your own retriever as a pipeline stage: a function from query texts to document rankings.

``retriever=function retriever.function=my_module.my_search`` imports ``my_search`` (a dotted path; functions
registered from Python with :func:`register` are found by their key), calls it once per batch as
``my_search(query_texts, top_k)`` and expects one ``{doc_id: score}`` per query. The function sees no chunks:
it ranks documents of the corpus (unknown ids are dropped and counted), so it composes with every later
stage (decomposition, versions, reranking) like any first stage.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, ClassVar, Sequence

from chunkers.types import Chunk, Query
from retrievers.base import top_k_of
from retrievers.infrastructure.errors import RetrieverError
from retrievers.types import Ranking, Run
from chunkers.options import Options, integer, string

_REGISTERED: dict[str, Callable[..., Any]] = {}


def register(fn: Callable[..., Any]) -> str:
    """Make a Python function selectable as ``retriever.function=<key>``; returns the key."""
    key = f"registered_{id(fn):x}"
    _REGISTERED[key] = fn
    return key


def resolve(path: str) -> Callable[..., Any]:
    if path in _REGISTERED:
        return _REGISTERED[path]
    module, _, name = str(path).rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name) if module else None
    except (ImportError, AttributeError):
        fn = None
    if not callable(fn):
        raise RetrieverError(f"retriever.function={path!r}: not an importable function (use module.function)")
    return fn


class FunctionRetriever:
    """A stage around ``function(query_texts, top_k) -> [{doc_id: score}, ...]``."""

    OPTIONS: ClassVar[Options] = {"function": string, "batch_size": integer(1)}

    def __init__(self, *, function: str, batch_size: int = 256) -> None:
        self.fn, self.name, self.batch_size = resolve(function), str(function), int(batch_size)
        self._doc_chunks: dict[str, list[str]] = {}
        self.unknown_ids = 0
        self.calls = 0

    def index(self, chunks: Sequence[Chunk]) -> None:
        self._doc_chunks = {}
        for c in chunks:
            self._doc_chunks.setdefault(c.doc_id, []).append(c.id)

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        run: Run = {}
        for start in range(0, len(queries), self.batch_size):
            batch = queries[start:start + self.batch_size]
            self.calls += 1
            results = list(self.fn([q.text for q in batch], top_k))
            if len(results) != len(batch):
                raise RetrieverError(f"retriever.function={self.name!r} returned {len(results)} rankings for "
                                     f"{len(batch)} queries")
            for q, hits in zip(batch, results):
                kept = {}
                for d, s in dict(hits).items():
                    if str(d) in self._doc_chunks:
                        kept[str(d)] = float(s)
                    else:
                        self.unknown_ids += 1
                run[q.id] = top_k_of(kept, top_k)
        lists = {qid: [{self._doc_chunks[d][0]: s for d, s in hits.items()}] for qid, hits in run.items()}
        return Ranking(run, chunk_lists=lists, calls={q.id: 1.0 for q in queries},
                       stats={"function_calls": float(self.calls), "function_unknown_ids": float(self.unknown_ids)})
