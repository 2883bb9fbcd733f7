"""Doc-level metrics with ranx: nDCG@k, Recall@k, MRR@k, MAP@k, and full-evidence coverage@k.

Full-evidence coverage@k is 1 for a query when every one of its relevant documents is in the top k (the
multi-hop "all evidence retrieved" measure), i.e. when ranx's Recall@k is exactly 1. Queries whose qrels
hold no relevant document (score > 0) are not scored and are counted as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from chunkers.types import Qrels, Run
from retrievers.base import canonical_run

MEASURES = ("ndcg", "recall", "mrr", "map")
COVERAGE = "evidence_coverage"


def metric_name(measure: str, k: int, prefix: str = "") -> str:
    """MLflow-safe names (``@`` is rejected): ``ndcg_at_10``, ``train_recall_at_100``."""
    return f"{prefix}{measure}_at_{k}"


def metric_names(ks: Sequence[int], prefix: str = "") -> list[str]:
    return [metric_name(m, k, prefix) for k in ks for m in (*MEASURES, COVERAGE)]


@dataclass
class Evaluation:
    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    n_scored: int
    n_skipped: int
    skipped: list[str] = field(default_factory=list)


def relevant_only(qrels: Qrels) -> Qrels:
    """Judgments with score > 0, queries with at least one of them; a new dict."""
    out = {qid: {d: int(s) for d, s in rels.items() if s > 0} for qid, rels in qrels.items()}
    return {qid: rels for qid, rels in out.items() if rels}


def evaluate(qrels: Qrels, run: Run, ks: Sequence[int]) -> Evaluation:
    """Score ``run`` against ``qrels`` at every k. Neither input is modified.

    Rankings are put in canonical order first (score descending, ties by doc id descending, as trec_eval
    does), so trec_eval on the TREC file of this run reproduces these numbers.
    """
    ks = sorted({int(k) for k in ks})
    judged = relevant_only(qrels)
    skipped = sorted(set(qrels) - set(judged))
    if not judged:
        return Evaluation({}, {}, 0, len(skipped), skipped)
    ordered = canonical_run({qid: run.get(qid, {}) for qid in judged})
    names = [f"{m}@{k}" for k in ks for m in MEASURES]
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    non_empty = {qid: hits for qid, hits in ordered.items() if hits}
    if non_empty:
        import warnings

        from ranx import Qrels as RQrels, Run as RRun, evaluate as ranx_evaluate

        rrun = RRun(non_empty)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="unsafe cast")  # numba's uint64 -> int64 notice
            ranx_evaluate(RQrels(judged), rrun, names, make_comparable=True, save_results_in_run=True)
        for name in names:
            measure, k = name.split("@")
            for qid, value in rrun.scores[name].items():
                per_query[qid][metric_name(measure, int(k))] = float(value)
    for row in per_query.values():
        for k in ks:
            for m in MEASURES:
                row.setdefault(metric_name(m, k), 0.0)
            row[metric_name(COVERAGE, k)] = 1.0 if row[metric_name("recall", k)] >= 1.0 - 1e-12 else 0.0
    n = len(per_query)
    columns = metric_names(ks)
    mean = {c: sum(row[c] for row in per_query.values()) / n for c in columns}
    return Evaluation(mean, per_query, n, len(skipped), skipped)
