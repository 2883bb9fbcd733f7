"""The audit of a run: a verdict for each failed query (from the run's ``audit.jsonl`` rows, its ranking and
the companion runs), the label-free signals of every query, and, afterwards, the labels joined to score it.

The verdicts never read the dataset's failure-mode labels: the dataset is rebuilt with ``label`` removed
from every query (:func:`strip_labels`), and labels are only joined afterwards (confusion table, agreement).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Mapping, Sequence

from chunkers.types import Chunk, Query
from retrievers.base import top_k_of
from retrievers.types import Run
from benchmarks.diagnosis.signals import query_signals
from benchmarks.diagnosis.verdicts import classify
from benchmarks.labels import LABELS

STRIPPED = ("label",)  # query metadata the audit must not see


def run_audit(rows: Sequence[Mapping[str, Any]], run: Run, corpus_meta: Mapping[str, Mapping[str, Any]],
              companions: Mapping[str, Run]) -> list[dict[str, Any]]:
    """One record per failed query: query id, verdict, evidence."""
    out = []
    for row in rows:
        qid = row["query_id"]
        ranking = list(top_k_of(run.get(qid, {})))
        routes = {n.split(":", 1)[1]: list(top_k_of(r.get(qid, {}))) for n, r in companions.items() if n.startswith("route:")}
        bm25 = list(top_k_of(companions["bm25"].get(qid, {}))) if "bm25" in companions else None
        dense = list(top_k_of(companions["dense"].get(qid, {}))) if "dense" in companions else None
        verdict = classify(row, ranking, corpus_meta, bm25=bm25, dense=dense, route_rankings=routes or None)
        if verdict is not None:
            out.append({"query_id": qid, "verdict": verdict[0], "evidence": verdict[1]})
    return out


def run_signals(rows: Sequence[Mapping[str, Any]], chunks: Sequence[Chunk], corpus: Any,
                companions: Mapping[str, Run]) -> dict[str, list[dict[str, str]]]:
    """The label-free signals (:mod:`benchmarks.diagnosis.signals`) of every audited query, judged or not."""

    by_id = {c.id: c for c in chunks}
    out: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        qid, k = row["query_id"], int(row["k"])
        ctx = [by_id[h["chunk_id"]] for h in row.get("chunks") or [] if h.get("chunk_id") in by_id] or None
        bm25 = list(top_k_of(companions["bm25"].get(qid, {}))) if "bm25" in companions else None
        dense = list(top_k_of(companions["dense"].get(qid, {}))) if "dense" in companions else None
        out[qid] = query_signals(row["query"], [h["doc_id"] for h in row["docs"]], [h["score"] for h in row["docs"]],
                                 corpus, k=k, context_chunks=ctx, bm25=bm25, dense=dense)
    return out


def strip_labels(dataset: Any) -> Any:
    def clean(qs: Sequence[Query]) -> list[Query]:
        return [Query(q.id, q.text, {k: v for k, v in q.metadata.items() if k not in STRIPPED}) for q in qs]

    return replace(dataset, queries=clean(dataset.queries), tune_queries=clean(dataset.tune_queries), _fingerprint=None)


def confusion(verdicts: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> dict[str, Counter]:
    table: dict[str, Counter] = {lab: Counter() for lab in LABELS}
    for v in verdicts:
        lab = labels.get(v["query_id"])
        if lab:
            table.setdefault(lab, Counter())[v["verdict"]] += 1
    return table


def agreement(verdicts: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> tuple[int, int]:
    """(verdicts equal to the label, labelled failures)."""
    scored = [v for v in verdicts if labels.get(v["query_id"])]
    return sum(v["verdict"] == labels[v["query_id"]] for v in scored), len(scored)
