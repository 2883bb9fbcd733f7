"""Doc-level metrics with ranx's definitions: nDCG@k, Recall@k, MRR@k, MAP@k, and full-evidence coverage@k.

The values are exactly ranx's (Bassani 2022): nDCG with Järvelin & Kekäläinen gains (rel / log2(rank + 1)),
the ideal ranking from the judgments; Recall@k over the relevant documents; MRR@k the reciprocal rank of
the first relevant document in the top k; MAP@k the precision at each relevant rank in the top k summed
over the number of relevant documents. They are computed here in numpy (:func:`ranx_metrics`) because
ranx's numba kernels are compiled again in every process (12-20 s before the first number, and again for
each new maximum id length); tests assert equality with ``ranx.evaluate`` to 1e-9 on Hypothesis-generated
qrels and runs (ties, graded and zero relevance, empty runs, unjudged queries, ids of any length), and
``benchmarks/scripts/metrics_equality.py`` on real runs of every shared dataset. ``evaluate(...,
engine="ranx")`` computes them with ranx itself.

Full-evidence coverage@k is 1 for a query when every one of its relevant documents is in the top k (the
multi-hop "all evidence retrieved" measure), i.e. when Recall@k is exactly 1. Queries whose qrels hold no
relevant document (score > 0) are not scored and are counted as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from chunkers.types import Document, Query
from retrievers.types import Qrels, Run
from retrievers.base import canonical_run
from retrievers.base import top_k_of

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


_SMALL_QUICKSORT = 15  # numba's quicksort: insertion sort below this size


def _numba_argsort(a: Sequence[float]) -> list[int]:
    """``np.argsort(a)`` as numba compiles it (its default quicksort: median-of-three partitions, insertion
    sort for short ranges; not stable). ranx orders each ranking with it, so documents with equal scores end
    up in an order this function reproduces exactly (numba.misc.quicksort, ported)."""
    r = list(range(len(a)))
    if len(a) < 2:
        return r

    def lt(x: float, y: float) -> bool:
        return x < y or (y != y and x == x)  # numba's float order: NaN last

    stack = [(0, len(a) - 1)]
    while stack:
        low, high = stack.pop()
        while high - low >= _SMALL_QUICKSORT:
            mid = (low + high) >> 1
            if lt(a[r[mid]], a[r[low]]):
                r[low], r[mid] = r[mid], r[low]
            if lt(a[r[high]], a[r[mid]]):
                r[high], r[mid] = r[mid], r[high]
            if lt(a[r[mid]], a[r[low]]):
                r[low], r[mid] = r[mid], r[low]
            pivot = a[r[mid]]
            r[high], r[mid] = r[mid], r[high]
            i, j = low, high - 1
            while True:
                while i < high and lt(a[r[i]], pivot):
                    i += 1
                while j >= low and lt(pivot, a[r[j]]):
                    j -= 1
                if i >= j:
                    break
                r[i], r[j] = r[j], r[i]
                i += 1
                j -= 1
            r[i], r[high] = r[high], r[i]
            if high - i > i - low:
                if high > i:
                    stack.append((i + 1, high))
                high = i - 1
            else:
                if i > low:
                    stack.append((low, i - 1))
                low = i + 1
        for i in range(low + 1, high + 1):  # insertion sort of r[low:high + 1]
            k = r[i]
            v = a[k]
            j = i
            while j > low and lt(v, a[r[j - 1]]):
                r[j] = r[j - 1]
                j -= 1
            r[j] = k
    return r


def ranx_order(hits: Mapping[str, float], passes: int = 2) -> list[str]:
    """The order in which ranx ranks a query's documents: ``argsort(-score)`` over their insertion order
    (ranx's ``sort_dict_by_value``), applied ``passes`` times — ``Run(...)`` sorts once and
    ``evaluate(..., make_comparable=True)`` sorts the sorted run again. Equal scores keep no particular
    order; this reproduces ranx's."""
    ids = list(hits)
    for _ in range(passes):
        ids = [ids[i] for i in _numba_argsort([-float(hits[d]) for d in ids])]
    return ids


def ranx_metrics(rels: Mapping[str, int], ranking: Sequence[str], ks: Sequence[int]) -> dict[str, float]:
    """ndcg/recall/mrr/map at each k for one query, as ranx defines them (relevance level 1). ``rels``: the
    query's relevant documents (score >= 1); ``ranking``: retrieved ids, best first."""
    import numpy as np

    out: dict[str, float] = {}
    gains = np.array([float(g) if (g := rels.get(d, 0)) >= 1 else 0.0 for d in ranking], dtype=np.float64)
    hit = gains > 0
    ideal = np.array(sorted((float(v) for v in rels.values() if v >= 1), reverse=True), dtype=np.float64)
    n_rel = len(ideal)
    for k in ks:
        if n_rel == 0:
            for m in MEASURES:
                out[metric_name(m, k)] = 0.0
            continue
        kr = len(ranking) if k == 0 or k > len(ranking) else k  # ranx's fix_k
        ki = len(ideal) if k == 0 or k > len(ideal) else k
        dcg = float(np.sum(gains[:kr] / np.log2(np.arange(1, kr + 1) + 1)))
        idcg = float(np.sum(ideal[:ki] / np.log2(np.arange(1, ki + 1) + 1))) or 1.0
        h = hit[:kr]
        first = int(np.argmax(h)) if h.any() else -1
        precision = np.where(h, np.cumsum(h) / np.arange(1, kr + 1), 0.0)
        out[metric_name("ndcg", k)] = dcg / idcg
        out[metric_name("recall", k)] = float(np.sum(hit[:k])) / n_rel if k else float(np.sum(hit)) / n_rel
        out[metric_name("mrr", k)] = 1.0 / (first + 1) if first >= 0 else 0.0
        out[metric_name("map", k)] = float(np.sum(precision)) / n_rel
    return out


def evaluate(qrels: Qrels, run: Run, ks: Sequence[int], *, engine: str = "numpy") -> Evaluation:
    """Score ``run`` against ``qrels`` at every k. Neither input is modified.

    Rankings are put in canonical order first (score descending, ties by doc id descending, as trec_eval
    does), so trec_eval on the TREC file of this run reproduces these numbers. ``engine``: ``numpy`` (ranx's
    definitions, no JIT) or ``ranx`` (``ranx.evaluate`` itself).
    """
    if engine not in ("numpy", "ranx"):
        raise ValueError(f"engine must be numpy|ranx, got {engine!r}")
    ks = sorted({int(k) for k in ks})
    judged = relevant_only(qrels)
    skipped = sorted(set(qrels) - set(judged))
    if not judged:
        return Evaluation({}, {}, 0, len(skipped), skipped)
    ordered = canonical_run({qid: run.get(qid, {}) for qid in judged})
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    if engine == "numpy":
        for qid, rels in judged.items():
            per_query[qid] = ranx_metrics(rels, ranx_order(ordered[qid]), ks)
    else:
        _ranx_scores(judged, ordered, ks, per_query)
    for row in per_query.values():
        for k in ks:
            for m in MEASURES:
                row.setdefault(metric_name(m, k), 0.0)
            row[metric_name(COVERAGE, k)] = 1.0 if row[metric_name("recall", k)] >= 1.0 - 1e-12 else 0.0
    n = len(per_query)
    columns = metric_names(ks)
    mean = {c: sum(row[c] for row in per_query.values()) / n for c in columns}
    return Evaluation(mean, per_query, n, len(skipped), skipped)


def _ranx_scores(judged: Qrels, ordered: Run, ks: Sequence[int], per_query: dict[str, dict[str, float]]) -> None:
    """Per-query scores from ``ranx.evaluate`` (the reference the numpy path is tested against)."""
    names = [f"{m}@{k}" for k in ks for m in MEASURES]
    non_empty = {qid: hits for qid, hits in ordered.items() if hits}
    if not non_empty:
        return
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

    if not sets:
        return float("nan")
    hits = sum(stale_hit(list(top_k_of(run.get(q, {}))), stale, cur, k) for q, (stale, cur) in sets.items())
    return hits / len(sets)
