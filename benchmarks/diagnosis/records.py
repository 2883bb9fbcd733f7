"""What the verdicts judge, one record per query: a run's audit rows (``audit.jsonl``: what the retrieval
layer returned for each query before a model saw it, unjudged queries too, ``judged: false``, so the
label-free signals can read them; written by every run, read back by ``rbench-audit``) and a production
system's logged retrieval (:class:`Trace`, read by :mod:`benchmarks.diagnosis.traces`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from chunkers.types import Chunk, Query
from retrievers.base import top_k_of
from retrievers.types import Run
from benchmarks.evaluation.evidence import BudgetContext, contains


@dataclass
class Trace:
    where: int | str  # line number, or "record N" / "span N"
    id: str
    query: str
    contexts: list[dict[str, Any]]
    reference: list[str] = field(default_factory=list)
    answer: str | None = None
    feedback: Any = None
    trace_id: str | None = None  # the tracing tool's trace id (spans), for joining references
    span_id: str | None = None
    source: str = "trace record"  # which format it came from (trace record, otlp, phoenix, langsmith, ...)


def reference_pieces(value: Any) -> list[str] | None:
    """A reference as evidence pieces, one reading for trace records, span attributes and ``--references``
    files: [] when absent or blank, ``[text]`` for a string, the list for a list of non-blank strings, None
    for anything else (the caller says what is wrong)."""
    if value is None or isinstance(value, str) and not value.strip():
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(x, str) and x.strip() for x in value):
        return list(value)
    return None


def audit_rows(queries: Sequence[Query], qrels: Mapping[str, Mapping[str, int]], run: Run, chunk_run: Run | None,
               chunks: Sequence[Chunk], records: Mapping[str, Mapping[str, Any]] | None, *, k: int = 10,
               budget: int | None = 512, context: Any = None) -> list[dict[str, Any]]:
    """The run-time audit artifact (one row per query; ``judged`` says whether it has relevant documents). ``context``: the run's
    :class:`benchmarks.evaluation.evidence.BudgetContext` (shared with the evidence metrics), else one from ``budget``."""

    context = context or BudgetContext(chunks, budget)
    by_id = context.by_id
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    rows = []
    for q in queries:
        gold = {d for d, s in qrels.get(q.id, {}).items() if s > 0}
        docs = list(top_k_of(run.get(q.id, {})))
        top_docs = docs[:k]
        rec = dict((records or {}).get(q.id, {}))
        row: dict[str, Any] = {
            "query_id": q.id, "query": q.text, "judged": bool(gold), "route": rec.get("route"), "subqueries": rec.get("subqueries", []),
            "retrieval_calls": rec.get("retrieval_calls"), "k": k, "gold_docs": sorted(gold),
            "docs": [{"rank": i + 1, "doc_id": d, "score": run[q.id][d], "gold": d in gold} for i, d in enumerate(top_docs)],
            "gold_in_top_k": sorted(gold & set(top_docs)),
            "doc_level_ok": gold <= set(top_docs) if gold else None,
        }
        if chunk_run is not None:
            ranked = list(top_k_of(chunk_run.get(q.id, {})))
            row["chunks"] = [{"rank": i + 1, "chunk_id": cid, "doc_id": by_id[cid].doc_id, "start": by_id[cid].start,
                              "end": by_id[cid].end, "score": chunk_run[q.id][cid], "gold": by_id[cid].doc_id in gold}
                             for i, cid in enumerate(ranked[:k])]
            spans = q.metadata.get("evidence") or []
            if spans:
                window = context(ranked)
                row["context_chunks"], row["budget"] = len(window), context.budget
                row["spans"] = [{**{k_: s[k_] for k_ in ("doc_id", "start", "end")},
                                 "split": not any(contains(c, s) for c in by_doc.get(s["doc_id"], ())),
                                 "in_context": any(contains(c, s) for c in window),
                                 # the rank of the best chunk holding the span whole (None: no retrieved chunk does)
                                 "chunk_rank": next((i + 1 for i, cid in enumerate(ranked) if by_id[cid].doc_id == s["doc_id"]
                                                     and contains(by_id[cid], s)), None)} for s in spans]
                row["span_level_ok"] = all(s["in_context"] for s in row["spans"])
        rows.append(row)
    return rows
