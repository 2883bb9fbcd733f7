"""Doc-level metrics with ranx: nDCG@k, Recall@k, MRR@k, MAP@k, and full-evidence coverage@k.

Full-evidence coverage@k is 1 for a query when every one of its relevant documents is in the top k (the
multi-hop "all evidence retrieved" measure), i.e. when ranx's Recall@k is exactly 1. Queries whose qrels
hold no relevant document (score > 0) are not scored and are counted as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from chunkers.types import Document, Query
from retrievers.types import Qrels, Run
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


def stale_sets(queries: Sequence[Query], qrels: Qrels, corpus: Sequence[Document]) -> dict[str, tuple[set[str], set[str]]]:
    """Per query with a version question: (superseded document ids, current document ids). From the query's
    ``stale_doc_ids`` / ``current_doc_id`` metadata where given (the enterprise set); otherwise derived from
    the corpus: a relevant document's predecessors along ``superseded_by`` links are its stale versions."""
    preds: dict[str, list[str]] = {}
    for d in corpus:
        nxt = d.metadata.get("superseded_by") if d.metadata else None
        if nxt:
            preds.setdefault(str(nxt), []).append(d.id)
    out: dict[str, tuple[set[str], set[str]]] = {}
    for q in queries:
        meta = q.metadata
        if meta.get("stale_doc_ids") and meta.get("current_doc_id"):
            out[q.id] = ({str(x) for x in meta["stale_doc_ids"]}, {str(meta["current_doc_id"])})
            continue
        current = {d for d, s in qrels.get(q.id, {}).items() if s > 0 and d in preds}
        stale: set[str] = set()
        todo = list(current)
        while todo:
            for p in preds.get(todo.pop(), []):
                if p not in stale:
                    stale.add(p)
                    todo.append(p)
        if stale:
            out[q.id] = (stale, current)
    return out


def stale_hit(ranking: Sequence[str], stale: set[str], current: set[str], k: int = 10) -> bool:
    """A superseded version ranks above the current one, or is in the top k while the current one is not."""
    pos = {d: i for i, d in enumerate(ranking)}
    best_current = min((pos[d] for d in current if d in pos), default=None)
    best_stale = min((pos[d] for d in stale if d in pos), default=None)
    if best_stale is None:
        return False
    if best_current is None or best_stale < best_current:
        return best_current is not None or best_stale < k
    return False


def stale_hit_rate(sets: dict[str, tuple[set[str], set[str]]], run: Run, k: int = 10) -> float:
    """Share of version queries (see :func:`stale_sets`) with a stale hit (:func:`stale_hit`)."""
    from retrievers.base import top_k_of

    if not sets:
        return float("nan")
    hits = sum(stale_hit(list(top_k_of(run.get(q, {}))), stale, cur, k) for q, (stale, cur) in sets.items())
    return hits / len(sets)
