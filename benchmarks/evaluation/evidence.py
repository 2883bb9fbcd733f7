"""Evidence-level metrics, where gold spans are known (``query.metadata["evidence"]``).

* ``evidence_split_rate``: share of gold spans that no single chunk contains whole;
* ``span_recall_at_{k}``: share of queries whose top-k chunks contain every gold span whole;
* ``span_recall_at_budget``: the same for the top chunks that fit ``budget`` tokens (context + text,
  counted with the same tokenizer for every chunker) — the context a generator would receive, and the
  fair comparison across chunkers (large windows win span_recall_at_k trivially);
* chunk statistics: count, mean and max length in tokens.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

from chunkers.tokens import TokenCounter
from chunkers.types import Chunk, Query
from retrievers.types import Run
from retrievers.base import top_k_of


def contains(chunk: Chunk, span: Mapping[str, Any]) -> bool:
    """Whether ``chunk`` holds the gold span whole."""
    return chunk.doc_id == span["doc_id"] and chunk.start <= span["start"] and chunk.end >= span["end"]


class BudgetContext:
    """The top chunks of a ranking that fit ``budget`` tokens (context + text) — what a generator would be
    given. Token counts are memoised, so the evidence metrics and the audit of one run count each chunk once.
    ``budget=None``: the whole ranking."""

    def __init__(self, chunks: Sequence[Chunk], budget: int | None, counter: TokenCounter | None = None) -> None:
        self.by_id = {c.id: c for c in chunks}
        self.budget = budget
        self.counter = counter
        self._tokens: dict[str, int] = {}

    def tokens(self, cid: str) -> int:
        if cid not in self._tokens:
            if self.counter is None:
                self.counter = TokenCounter()
            c = self.by_id[cid]
            self._tokens[cid] = self.counter.count(c.context) + self.counter.count(c.text)
        return self._tokens[cid]

    def __call__(self, ranked: Sequence[str]) -> list[Chunk]:
        if self.budget is None:
            return [self.by_id[cid] for cid in ranked]
        used, out = 0, []
        for cid in ranked:
            n = self.tokens(cid)
            if used + n > self.budget:
                break
            used += n
            out.append(self.by_id[cid])
        return out


def evidence_metrics(chunks: Sequence[Chunk], queries: Sequence[Query], chunk_run: Run | None, *, ks: Sequence[int],
                     budget: int = 512, counter: TokenCounter | None = None,
                     context: BudgetContext | None = None) -> dict[str, float]:
    """Metrics over the queries that carry gold spans; an empty dict when none do. ``context``: a
    :class:`BudgetContext` over ``chunks`` to share (else one is made from ``budget`` and ``counter``)."""
    gold = [(q, q.metadata.get("evidence") or []) for q in queries]
    gold = [(q, spans) for q, spans in gold if spans]
    if not gold:
        return {}
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for c in chunks:
        by_doc[c.doc_id].append(c)
    all_spans = [s for _, spans in gold for s in spans]
    split = sum(1 for s in all_spans if not any(contains(c, s) for c in by_doc.get(s["doc_id"], ())))
    out = {"evidence_split_rate": split / len(all_spans), "evidence_spans": len(all_spans)}
    if chunk_run is None:
        return out
    context = context or BudgetContext(chunks, budget, counter)
    by_id = context.by_id
    hits_at = {k: 0 for k in ks}
    hits_budget = 0
    for q, spans in gold:
        ranked = list(top_k_of(chunk_run.get(q.id, {})))
        for k in ks:
            top = [by_id[c] for c in ranked[:k]]
            hits_at[k] += all(any(contains(c, s) for c in top) for s in spans)
        window = context(ranked)
        hits_budget += all(any(contains(c, s) for c in window) for s in spans)
    n = len(gold)
    out.update({f"span_recall_at_{k}": hits_at[k] / n for k in ks})
    out["span_recall_at_budget"] = hits_budget / n
    return out


def chunk_stats(chunks: Sequence[Chunk], counter: TokenCounter | None = None) -> dict[str, float]:
    counter = counter or TokenCounter()
    sizes = counter.counts([c.text for c in chunks])
    return {"chunk_count": len(chunks), "chunk_tokens_mean": sum(sizes) / max(1, len(sizes)),
            "chunk_tokens_max": max(sizes, default=0)}
