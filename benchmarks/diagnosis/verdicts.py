"""The verdict ladder: why a failed query failed, one cause in a fixed order.

dataset and chunks from the logged config, and gives each *failed* query (a gold document missing from
the top k, a gold span missing from the context, or a superseded version ranked above its current one)
one verdict, with the evidence for it, checked in this order:

1. ``stale_version`` — a superseded document (corpus metadata ``superseded_by``) ranks above the current
   version of a gold document, or is in the top k while the current one is not;
2. ``chunk_boundary`` — a gold document is in the top k but a gold span of it is split across chunks
   (no single chunk contains it whole);
3. ``multi_hop`` — some but not all gold documents are in the top k;
4. ``exact_term`` — a BM25 run finds a gold document in the top k that a dense run misses (the companion
   runs are computed with the run's chunker, from the cache where possible);
5. ``routing`` — (router runs) another route ranks this query's gold documents better (nDCG@k);
6. ``other``.

"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from benchmarks.datasets.files import locate
from benchmarks.diagnosis.matching import Matcher, cut_at_edge, normalise
from benchmarks.labels import VERDICTS
from retrievers.query_features import identifiers
from retrievers.versions import is_stale

if TYPE_CHECKING:
    from benchmarks.diagnosis.companions import CorpusView
    from benchmarks.diagnosis.records import Trace

__all__ = ["VERDICTS", "classify", "ndcg_at", "stale_evidence", "successors", "suggest_fix", "trace_cause", "where_evidence"]


def successors(corpus_meta: Mapping[str, Mapping[str, Any]], doc: str) -> list[str]:
    out, seen = [], {doc}
    nxt = corpus_meta.get(doc, {}).get("superseded_by")
    while nxt and nxt not in seen:
        out.append(str(nxt))
        seen.add(str(nxt))
        nxt = corpus_meta.get(str(nxt), {}).get("superseded_by")
    return out


def stale_evidence(ranking: Sequence[str], gold: set[str], corpus_meta: Mapping[str, Mapping[str, Any]], k: int) -> str | None:
    """Why a superseded version outranks the current one (None if none does); from corpus metadata only."""
    pos = {d: i for i, d in enumerate(ranking)}
    for i, d in enumerate(ranking[:k]):
        current = [s for s in successors(corpus_meta, d) if s in gold]
        if not current:
            continue
        cur = current[-1]
        if cur not in pos or pos[cur] > i:
            where = f"rank {pos[cur] + 1}" if cur in pos else "not retrieved"
            return f"superseded {d} at rank {i + 1}; its current version {cur} is {where}"
    return None


def ndcg_at(ranking: Sequence[str], gold: set[str], k: int) -> float:

    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranking[:k]) if d in gold)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal if ideal else 0.0


def classify(row: Mapping[str, Any], ranking: Sequence[str], corpus_meta: Mapping[str, Mapping[str, Any]], *,
             bm25: Sequence[str] | None = None, dense: Sequence[str] | None = None,
             route_rankings: Mapping[str, Sequence[str]] | None = None) -> tuple[str, str] | None:
    """(verdict, evidence) for a failed query; None when the query did not fail."""
    k = int(row["k"])
    gold = set(row["gold_docs"])
    top = list(ranking[:k])
    found = gold & set(top)
    stale = stale_evidence(ranking, gold, corpus_meta, k)
    span_fail = row.get("span_level_ok") is False
    if found == gold and not span_fail and stale is None:
        return None
    if stale is not None:
        return "stale_version", stale
    split = [s for s in row.get("spans", []) if s["split"] and s["doc_id"] in found]
    if split:
        s = split[0]
        return "chunk_boundary", (f"gold document {s['doc_id']} is at rank {top.index(s['doc_id']) + 1} but its evidence "
                                  f"span [{s['start']}:{s['end']}] is split across chunks")
    if found and found != gold:
        return "multi_hop", f"found {len(found)} of {len(gold)} gold documents in the top {k}; missing {sorted(gold - found)}"
    missed = gold - found
    if bm25 is not None and dense is not None and missed:
        b, d = missed & set(bm25[:k]), missed & set(dense[:k])
        if b - d:
            return "exact_term", f"missed {sorted(b - d)}: BM25 puts it in the top {k}, dense does not"
    if route_rankings and row.get("route") in route_rankings:
        taken = ndcg_at(route_rankings[row["route"]], gold, k)
        best = max(route_rankings, key=lambda r: ndcg_at(route_rankings[r], gold, k))
        best_score = ndcg_at(route_rankings[best], gold, k)
        if best != row["route"] and best_score > taken:
            return "routing", f"routed to {row['route']} (nDCG@{k} {taken:.3f}); {best} scores {best_score:.3f}"
    if found == gold and span_fail:
        return "other", "gold documents retrieved, spans whole, but the span's chunk is outside the context budget"
    return "other", f"{len(gold - found)} gold document(s) missing from the top {k}; no cause above applies"


# ------------------------------------------------------------------------------------------ traces
def trace_cause(trace: Trace, missed: Sequence[str], pieces: Sequence[tuple[str, bool, str]], texts: Sequence[str],
           ctx_docs: Sequence[str | None], gold: Mapping[str, list[str]], view: CorpusView | None,
           k: int) -> tuple[str, str]:
    """The first cause, in the run audit's order, of a trace whose reference did not reach the context."""

    meta = (lambda d: view.docs[d].metadata if view and d in view.docs else {})
    # 1. stale_version: a passage comes from a superseded or deprecated document
    for i, (c, d) in enumerate(zip(trace.contexts, ctx_docs)):
        m = dict(meta(d)) if d else {}
        m.update(c.get("metadata") or {})
        if is_stale(m):
            holders = sorted({h for p in missed for h in gold.get(p, [])})
            newer = m.get("superseded_by")
            if newer and (not holders or newer in holders):
                return "stale_version", (f"context #{i + 1} is from {d or c['id']}, superseded by {newer}"
                                         + (" (which holds the reference)" if newer in holders else ""))
            if not newer and (not holders or d not in holders):
                return "stale_version", f"context #{i + 1} is from {d or c['id']}, which is deprecated"
    # 2. chunk_boundary: the right document was retrieved, the passage did not hold the reference whole

    for p in missed:
        edge = cut_at_edge(p, texts)
        if edge:
            return "chunk_boundary", edge
        for d in gold.get(p, []):
            span = locate(view.docs[d].text, p) if view else None
            for i, (c, cd) in enumerate(zip(trace.contexts, ctx_docs)):
                at = locate(view.docs[d].text, c["text"]) if span and cd == d else None
                if at and at[0] < span[1] and span[0] < at[1]:  # the passage overlaps the evidence, without holding it
                    return "chunk_boundary", (f"context #{i + 1} is the part [{at[0]}:{at[1]}] of {d}, which cuts the "
                                              f"evidence at [{span[0]}:{span[1]}]")
    # 3. multi_hop: some evidence reached, some not
    if len(pieces) > 1 and any(ok for _, ok, _ in pieces):
        n_ok = sum(ok for _, ok, _ in pieces)
        where = {d for p in missed for d in gold.get(p, [])}
        return "multi_hop", (f"{n_ok} of {len(pieces)} reference pieces reached the context; missing "
                             + (f"evidence in {', '.join(sorted(where))}" if where else repr(missed[0][:60])))
    # 4. exact_term: an identifier of the query is in no passage (and, with the corpus, BM25 finds the evidence)
    context = normalise(" ".join(texts))
    absent = [t for t in identifiers(trace.query) if normalise(t) and f" {normalise(t)} " not in f" {context} "]
    if view is not None:
        for p in missed:
            for d in gold.get(p, []):
                b, dn = view.rank("bm25", trace.id, d), view.rank("dense", trace.id, d)
                if b is not None and b <= k and (dn is None or dn > k):
                    return "exact_term", (f"BM25 ranks {d} #{b}, dense " + (f"#{dn}" if dn else "not at all")
                                          + (f"; the query's {absent[0]!r} is in no passage" if absent else ""))
        absent = [t for t in absent if any(view.holds(d, t) for p in missed for d in gold.get(p, []))] if gold else absent
    if absent:
        return "exact_term", f"the query's {absent[0]!r} is in none of the {len(texts)} passages"
    # 5. other
    holders = sorted({d for p in missed for d in gold.get(p, [])})
    if view is not None and holders:
        return "other", f"the reference is in {', '.join(holders)}, which no passage comes from; no cause above applies"
    return "other", "the reference is in no passage; no cause above applies" + ("" if view else " (give --corpus to look further)")


def where_evidence(missed: Sequence[str], gold: Mapping[str, list[str]], view: CorpusView | None, matcher: Matcher) -> str:
    if view is None:
        return ""
    parts = []
    for p in missed:
        docs = gold.get(p, [])
        if not docs:
            parts.append(f"{p[:50]!r} is in no corpus document")
            continue

        at = locate(view.docs[docs[0]].text, p)
        parts.append(f"{p[:50]!r} is in {docs[0]}" + (f" [{at[0]}:{at[1]}]" if at else "")
                     + (f" (and {len(docs) - 1} more)" if len(docs) > 1 else ""))
    return "; ".join(parts)


def suggest_fix(verdict: str, trace: Trace, missed: Sequence[str], gold: Mapping[str, list[str]], view: CorpusView | None,
         matcher: Matcher, k: int) -> str:
    if view is None:
        return {"stale_version": "versions=filter or versions=decay (with version metadata on the corpus)",
                "chunk_boundary": "chunker=sections (structure-aware chunks)",
                "multi_hop": "decomposer=heuristic or decomposer=llm",
                "exact_term": "retriever=bm25 or retriever=hybrid"}.get(verdict, "")
    docs = sorted({d for p in missed for d in gold.get(p, [])})
    if not docs:
        return "the evidence is not in the corpus: no retrieval setting can find it"
    d = docs[0]
    ranks = {n: view.rank(n, trace.id, d) for n in ("bm25", "dense", "versions=filter")}
    shown = ", ".join(f"{n} #{r}" if r else f"{n} not in the top 100" for n, r in ranks.items())
    found = [n for n, r in ranks.items() if r is not None and r <= k]
    whole = all(view.whole_in_section_chunk(p, dd, matcher) for p in missed for dd in gold.get(p, [])[:1])
    advice = {"stale_version": "versions=filter", "chunk_boundary": "chunker=sections" if whole else "a larger chunker.size",
              "exact_term": "retriever=bm25 or retriever=hybrid", "multi_hop": "decomposer=heuristic (one search per hop)"}
    first = advice.get(verdict) or (f"retriever={found[0]}" if found else "")
    return (f"{d}: {shown} (chunker=sections)" + ("; a chunker=sections chunk holds the reference whole" if whole else "")
            + (f"; try {first}" if first else ""))
