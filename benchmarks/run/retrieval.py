"""Run a retrieval pipeline over a dataset: load -> chunk -> index -> rank both splits.

Shared by the runner (``rbench``) and the audit (``rbench-audit``), so both see the same chunks and the
same document and chunk rankings for the same config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from benchmarks.datasets.base import Dataset
from chunkers.base import Chunker
from chunkers.types import Chunk
from retrievers.base import canonical_run
from retrievers.stage import Stage
from retrievers.types import Ranking, Run
from retrievers.base import chunk_view
from retrievers.stage import as_stage
from retrievers.infrastructure.fingerprint import fingerprint


@dataclass
class Retrieval:
    """Document runs for the evaluated split (and the tuning split), the chunk view behind the evaluated
    one, the stage's declared result, and what it cost."""

    run: Run
    tune_run: Run
    chunks: list[Chunk]
    timings: dict[str, float]
    chunk_run: Run = field(default_factory=dict)  # per evaluated query: the chunks behind its documents, ranked
    ranking: Ranking = field(default_factory=lambda: Ranking({}))  # the evaluated split's result


def chunk_dataset(dataset: Dataset, chunker: Chunker) -> list[Chunk]:
    from tqdm.auto import tqdm

    chunks: list[Chunk] = []
    for doc in tqdm(dataset.corpus, desc="chunk", unit="doc", leave=False, disable=None if len(dataset.corpus) >= 2000 else True):
        chunks.extend(chunker.chunk(doc))
    return chunks


def doc_chunks(chunks: Sequence[Chunk]) -> dict[str, list[str]]:
    """Chunk ids per document, in document order."""
    out: dict[str, list[str]] = {}
    for c in chunks:
        out.setdefault(c.doc_id, []).append(c.id)
    return out


def chunk_rankings(ranking: Ranking, qids: Sequence[str], by_doc: dict[str, list[str]]) -> Run:
    """Per query, the chunk ranking behind the document ranking: the stage's own chunk run when it has one,
    else the chunk view of its documents and chunk lists (:func:`retrievers.base.chunk_view`)."""

    if ranking.chunk_run is not None:
        return {q: ranking.chunk_run.get(q, {}) for q in qids}
    return {q: chunk_view(ranking.run.get(q, {}), ranking.chunk_lists.get(q, []), by_doc) for q in qids}


def retrieve(dataset: Dataset, chunker: Chunker, stage: Stage | Any, *, top_k: int) -> Retrieval:
    """Chunk the corpus, index once, rank the tuning split and then the evaluated split (so the evaluated
    split's result carries the stage's counters for all the work done). ``stage``: a pipeline stage, or a
    chunk-level retriever (put behind the chunk -> document adapter with ``chunker.aggregate``)."""

    stage = as_stage(stage, aggregate=getattr(chunker, "aggregate", "max"))
    t0 = time.perf_counter()
    chunks = chunk_dataset(dataset, chunker)
    t1 = time.perf_counter()
    stage.index(chunks)
    t2 = time.perf_counter()
    tune = stage.rank(dataset.tune_queries, top_k=top_k) if dataset.tune_queries else None
    main = stage.rank(dataset.queries, top_k=top_k) if dataset.queries else \
        Ranking({}, stats=tune.stats if tune is not None else {})
    t3 = time.perf_counter()
    n_q = len(dataset.queries) + len(dataset.tune_queries)
    timings = {"time_chunk_s": t1 - t0, "time_index_s": t2 - t1, "time_search_s": t3 - t2,
               "queries_per_s": n_q / (t3 - t2) if t3 > t2 else 0.0,
               "ms_per_query": 1000 * (t3 - t2) / n_q if n_q else 0.0}
    chunk_run = chunk_rankings(main, [q.id for q in dataset.queries], doc_chunks(chunks))
    return Retrieval(canonical_run(main.run, top_k), canonical_run(tune.run, top_k) if tune is not None else {},
                     chunks, timings, chunk_run, main)


_DATASETS: dict[str, Dataset] = {}


def load_dataset(loader: Any, dataset_cfg: dict[str, Any]) -> Dataset:
    """Load once per process per dataset config: the points of a sweep share the (read-only) dataset.
    A file edited between two sweep points in one process is not re-read; a new process re-reads it."""

    key = fingerprint(dataset_cfg)
    if key not in _DATASETS:
        _DATASETS.clear()  # keep at most one corpus in memory
        _DATASETS[key] = loader.load()
    return _DATASETS[key]
