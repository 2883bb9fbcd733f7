"""The Python API: evaluate a run you already have, with the contract's metric names.

    from benchmarks import evaluate
    evaluate({"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": {"d2": 1}}, k=[1, 10])
    evaluate("runs/bm25.trec", "qrels/test.tsv", k=[10, 100])   # TREC run file, TREC or BEIR qrels

Metrics are ranx's (numpy, no JIT; :mod:`benchmarks.metrics`): ``ndcg_at_k``, ``recall_at_k``, ``mrr_at_k``,
``map_at_k`` and ``evidence_coverage_at_k`` (every relevant document in the top k), averaged over the
queries with at least one relevant judgment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence, Union

from retrievers.types import Qrels, Run

RunLike = Union[Mapping[str, Mapping[str, float]], str, Path]
QrelsLike = Union[Mapping[str, Mapping[str, int]], str, Path]


def _run(run: RunLike) -> Run:
    if isinstance(run, (str, Path)):
        from benchmarks.trec import read_run

        return read_run(Path(run))
    return {str(q): {str(d): float(s) for d, s in hits.items()} for q, hits in run.items()}


def _qrels(qrels: QrelsLike) -> Qrels:
    if isinstance(qrels, (str, Path)):
        from benchmarks.datasets.beir import read_qrels

        return read_qrels(Path(qrels))[0]
    return {str(q): {str(d): int(s) for d, s in rels.items()} for q, rels in qrels.items()}


def evaluate(run: RunLike, qrels: QrelsLike, k: Sequence[int] = (1, 5, 10, 100), *,
             per_query: bool = False) -> dict:
    """Mean of every contract metric at every k (with ``per_query``: ``{"mean": ..., "per_query": {qid: ...},
    "skipped": [...]}``). ``run`` and ``qrels`` are dicts or file paths (a TREC run; TREC or BEIR-tsv qrels)."""
    from benchmarks.metrics import evaluate as _evaluate

    ks = [int(x) for x in k]
    if not ks or any(x < 1 for x in ks):
        raise ValueError(f"k must be a non-empty list of integers >= 1, got {list(k)}")
    ev = _evaluate(_qrels(qrels), _run(run), ks)
    if per_query:
        return {"mean": ev.mean, "per_query": ev.per_query, "skipped": ev.skipped}
    return dict(ev.mean)
