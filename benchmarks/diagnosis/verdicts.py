"""The verdict ladder: why a failed query failed, one cause, the first of a fixed order that applies.

Runs (``rbench-audit --run-id``: a gold document missing from the top k, a gold span missing from the
context, or a superseded version ranked above its current one) and production traces (``rbench-audit
--traces``: a reference that did not reach the context) are judged by the same rules, in this order
(:data:`LADDER`), over one evidence record (:class:`Evidence`, holding a run's or a trace's facts):

1. ``stale_version`` — a superseded version outranks the current one (runs: corpus metadata
   ``superseded_by`` leads from a top-k document to a gold one ranked lower or not at all; traces: a
   passage comes from a superseded or deprecated document);
2. ``chunk_boundary`` — the right document was retrieved but the chunk boundary cut the evidence (a gold
   span split across chunks; a passage ending with the reference's first words or overlapping it);
3. ``multi_hop`` — some but not all of the evidence reached the top k (gold documents; reference pieces);
4. ``exact_term`` — BM25 ranks the missed evidence in the top k and dense does not (companion runs), or an
   identifier of the query is in no passage (traces);
5. ``wrong_passage`` — the evidence's document is in the top k but the passage holding the evidence is not
   (its chunk ranks outside the top k chunks; a trace's passage of the right document that does not hold it);
6. ``routing`` — (router runs) another route ranks this query's gold documents better (nDCG@k);
7. ``other`` — with the ranks it is based on (the missing documents' ranks; the evidence chunk's rank and
   the context budget).

Every explanation names the ranks it rests on, and a trace's suggested fix (:func:`suggest_fix`) is offered
only when the companion run for that fix ranks the evidence higher than the trace did (both ranks shown).

The verdicts never read a dataset's failure-mode labels (:func:`benchmarks.diagnosis.run_audit.strip_labels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from benchmarks.datasets.files import locate
from benchmarks.diagnosis.matching import Matcher, cut_at_edge, normalise
from benchmarks.labels import VERDICTS
from retrievers.query_features import identifiers
from retrievers.versions import is_stale, successors

if TYPE_CHECKING:
    from benchmarks.diagnosis.companions import CorpusView
    from benchmarks.diagnosis.records import Trace

__all__ = ["LADDER", "VERDICTS", "Evidence", "RunFacts", "TraceFacts", "classify", "ndcg_at", "stale_evidence",
           "successors", "suggest_fix", "trace_cause", "verdict", "where_evidence"]


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


# ------------------------------------------------------------------------------------------ the evidence
@dataclass
class RunFacts:
    """A run's failed query: its ``audit.jsonl`` row, its document ranking, the corpus metadata and the
    companion rankings (BM25, dense, each route's)."""

    row: Mapping[str, Any]
    ranking: Sequence[str]
    corpus_meta: Mapping[str, Mapping[str, Any]]
    bm25: Sequence[str] | None = None
    dense: Sequence[str] | None = None
    route_rankings: Mapping[str, Sequence[str]] | None = None

    def __post_init__(self) -> None:
        self.gold = set(self.row["gold_docs"])
        self.top = list(self.ranking[: int(self.row["k"])])
        self.found = self.gold & set(self.top)
        self.span_fail = self.row.get("span_level_ok") is False


@dataclass
class TraceFacts:
    """A logged retrieval whose reference did not reach the context: its passages (and their documents, where
    known), the reference pieces (reached or not) and, with a corpus, the documents holding each piece and the
    companion rankings (:class:`benchmarks.diagnosis.companions.CorpusView`)."""

    trace: Trace
    missed: Sequence[str]
    pieces: Sequence[tuple[str, bool, str]]  # (piece, reached, how)
    texts: Sequence[str]
    ctx_docs: Sequence[str | None]
    gold: Mapping[str, list[str]]  # piece -> documents holding it (empty without a corpus)
    view: CorpusView | None
    maybe: Sequence[str] = ()  # documents an ambiguous passage may be from (its text is in each of them)

    def holders(self) -> list[str]:
        """The documents holding a missed piece."""
        return sorted({d for p in self.missed for d in self.gold.get(p, [])})


@dataclass
class Evidence:
    """One failed query as the rules read it: ``k`` and the facts of a run or of a trace."""

    k: int
    run: RunFacts | None = None
    trace: TraceFacts | None = None


# ------------------------------------------------------------------------------------------ the rules
def stale_version(ev: Evidence) -> str | None:
    """A superseded version outranks the current one (runs: its current version is gold and ranks lower or
    not at all); a passage comes from a superseded or deprecated document (traces)."""
    if ev.run is not None:
        return stale_evidence(ev.run.ranking, ev.run.gold, ev.run.corpus_meta, ev.k)
    t = ev.trace
    meta = (lambda d: t.view.docs[d].metadata if t.view and d in t.view.docs else {})
    for i, (c, d) in enumerate(zip(t.trace.contexts, t.ctx_docs)):
        m = dict(meta(d)) if d else {}
        m.update(c.get("metadata") or {})
        if is_stale(m):
            holders = t.holders()
            newer = m.get("superseded_by")
            if newer and (not holders or newer in holders):
                return (f"context #{i + 1} is from {d or c['id']}, superseded by {newer}"
                        + (" (which holds the reference)" if newer in holders else ""))
            if not newer and (not holders or d not in holders):
                return f"context #{i + 1} is from {d or c['id']}, which is deprecated"
    return None


def chunk_boundary(ev: Evidence) -> str | None:
    """The right document was retrieved but the chunk boundary cut its evidence: a gold span split across
    chunks (runs); a passage ending with the reference's first words, beginning with its last ones, or
    overlapping the evidence without holding it (traces)."""
    if ev.run is not None:
        split = [s for s in ev.run.row.get("spans", []) if s["split"] and s["doc_id"] in ev.run.found]
        if not split:
            return None
        s = split[0]
        return (f"gold document {s['doc_id']} is at rank {ev.run.top.index(s['doc_id']) + 1} of the top {ev.k}, but no "
                f"chunk holds its evidence span [{s['start']}:{s['end']}] whole: it is split across chunks")
    t = ev.trace
    for p in t.missed:
        edge = cut_at_edge(p, t.texts)
        if edge:
            return edge
        for d in t.gold.get(p, []):
            span = locate(t.view.docs[d].text, p) if t.view else None
            for i, (c, cd) in enumerate(zip(t.trace.contexts, t.ctx_docs)):
                at = locate(t.view.docs[d].text, c["text"]) if span and cd == d else None
                if at and at[0] < span[1] and span[0] < at[1]:  # the passage overlaps the evidence, without holding it
                    return (f"context #{i + 1} is the part [{at[0]}:{at[1]}] of {d}, which cuts the "
                            f"evidence at [{span[0]}:{span[1]}]")
    return None


def wrong_passage(ev: Evidence) -> str | None:
    """The evidence's document is in the top k, but the passage holding the evidence is not: runs, a gold span
    whose chunk ranks outside the top k chunks (or was not retrieved) while another chunk of its document was;
    traces, a passage of the document holding the reference that neither holds nor overlaps it."""
    k = ev.k
    if ev.run is not None:
        r = ev.run
        for s in r.row.get("spans", []):
            if s["in_context"] or s["split"] or s["doc_id"] not in r.found or "chunk_rank" not in s:
                continue
            rank = s["chunk_rank"]
            if rank is None or rank > k:
                where = f"at chunk rank {rank}, outside the top {k} chunks" if rank else "not among the retrieved chunks"
                return (f"gold document {s['doc_id']} is at rank {r.top.index(s['doc_id']) + 1} of the top {k} through "
                        f"another of its chunks, but the chunk holding its evidence [{s['start']}:{s['end']}] is {where}")
        return None
    t = ev.trace
    if t.view is None:
        return None
    for p in t.missed:
        for d in t.gold.get(p, []):
            ctx = [(i, c) for i, (c, cd) in enumerate(zip(t.trace.contexts, t.ctx_docs)) if cd == d]
            if not ctx:
                continue
            span = locate(t.view.docs[d].text, p)
            i, c = ctx[0]
            at = locate(t.view.docs[d].text, c["text"])
            part = f"the part [{at[0]}:{at[1]}]" if at else "another passage of it"
            return (f"context #{i + 1} is from {d}, which holds the reference" + (f" at [{span[0]}:{span[1]}]" if span else "")
                    + f", but it is {part}: the passage holding the evidence is not among the {len(t.texts)} contexts")
    return None


def multi_hop(ev: Evidence) -> str | None:
    """Some of the evidence reached the top k, some did not (gold documents; reference pieces)."""
    if ev.run is not None:
        r = ev.run
        if r.found and r.found != r.gold:
            return f"found {len(r.found)} of {len(r.gold)} gold documents in the top {ev.k}; missing {sorted(r.gold - r.found)}"
        return None
    t = ev.trace
    if len(t.pieces) > 1 and any(ok for _, ok, _ in t.pieces):
        n_ok = sum(ok for _, ok, _ in t.pieces)
        where = set(t.holders())
        return (f"{n_ok} of {len(t.pieces)} reference pieces reached the context; missing "
                + (f"evidence in {', '.join(sorted(where))}" if where else repr(t.missed[0][:60])))
    return None


def exact_term(ev: Evidence) -> str | None:
    """Lexical matching finds what the run missed: BM25 ranks a missed gold document in the top k and dense
    does not; or an identifier of the query is in no passage (traces; with a corpus, one the evidence holds)."""
    k = ev.k
    if ev.run is not None:
        r = ev.run
        missed = r.gold - r.found
        if r.bm25 is not None and r.dense is not None and missed:
            b, d = missed & set(r.bm25[:k]), missed & set(r.dense[:k])
            if b - d:
                doc = sorted(b - d)[0]
                more = f" (and {len(b - d) - 1} more)" if len(b - d) > 1 else ""
                dense_rank = f"#{list(r.dense).index(doc) + 1}" if doc in r.dense else f"not in its top {len(r.dense)}"
                here = f"#{list(r.ranking).index(doc) + 1}" if doc in r.ranking else "not retrieved"
                return (f"missed {doc}{more} (this run: {here}): BM25 ranks it #{list(r.bm25).index(doc) + 1}, in the top {k}; "
                        f"dense {dense_rank}")
        return None
    t = ev.trace
    context = normalise(" ".join(t.texts))
    absent = [w for w in identifiers(t.trace.query) if normalise(w) and f" {normalise(w)} " not in f" {context} "]
    if t.view is not None:
        for p in t.missed:
            for d in t.gold.get(p, []):
                if d in t.ctx_docs or d in t.maybe:  # retrieved (or perhaps): a lexical match would not have found more
                    continue
                b, dn = t.view.rank("bm25", t.trace.id, d), t.view.rank("dense", t.trace.id, d)
                if b is not None and b <= k and (dn is None or dn > k):
                    return (f"BM25 ranks {d} #{b}, dense " + (f"#{dn}" if dn else "not at all")
                            + (f"; the query's {absent[0]!r} is in no passage" if absent else ""))
        absent = [w for w in absent if any(t.view.holds(d, w) for p in t.missed for d in t.gold.get(p, []))] if t.gold else absent
    if absent:
        return f"the query's {absent[0]!r} is in none of the {len(t.texts)} passages"
    return None


def routing(ev: Evidence) -> str | None:
    """(router runs) another route ranks this query's gold documents better (nDCG@k)."""
    r = ev.run
    if r is None or not r.route_rankings or r.row.get("route") not in r.route_rankings:
        return None
    k, routes, taken_route = ev.k, r.route_rankings, r.row["route"]
    taken = ndcg_at(routes[taken_route], r.gold, k)
    best = max(routes, key=lambda name: ndcg_at(routes[name], r.gold, k))
    best_score = ndcg_at(routes[best], r.gold, k)
    if best != taken_route and best_score > taken:
        return f"routed to {taken_route} (nDCG@{k} {taken:.3f}); {best} scores {best_score:.3f}"
    return None


def other(ev: Evidence) -> str:
    """No cause above applies; says what is known of where the evidence was."""
    if ev.run is not None:
        r = ev.run
        if r.found == r.gold and r.span_fail:
            out = [s for s in r.row.get("spans", []) if not s["in_context"]]
            s = out[0] if out else {}
            if s.get("chunk_rank"):
                budget = r.row.get("budget")
                return (f"gold documents retrieved and spans whole, but the chunk holding {s['doc_id']}'s evidence "
                        f"[{s['start']}:{s['end']}] is at chunk rank {s['chunk_rank']}; the "
                        + (f"{budget}-token " if budget else "") + f"context budget holds the top {r.row.get('context_chunks')} chunks")
            return "gold documents retrieved, spans whole, but the span's chunk is outside the context budget"
        missing = sorted(r.gold - r.found)
        shown = ", ".join(f"{d} (" + (f"rank {list(r.ranking).index(d) + 1}" if d in r.ranking else "not retrieved") + ")"
                          for d in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        return f"{len(missing)} gold document(s) missing from the top {ev.k}: {shown}; no cause above applies"
    t = ev.trace
    holders = t.holders()
    perhaps = [d for d in holders if d in t.maybe]
    if t.view is not None and perhaps:
        return (f"the reference is in {', '.join(perhaps)}; a passage's text is in it and in other documents too, so "
                "which one the passage came from is unknown (give passages an id or source); no cause above applies")
    if t.view is not None and holders:
        return f"the reference is in {', '.join(holders)}, which no passage comes from; no cause above applies"
    return "the reference is in no passage; no cause above applies" + ("" if t.view else " (give --corpus to look further)")


Rule = Callable[[Evidence], "str | None"]
#: the ladder, in the order the rules are tried: the first that applies is the verdict (``other`` always does)
LADDER: tuple[tuple[str, Rule], ...] = (("stale_version", stale_version), ("chunk_boundary", chunk_boundary),
                                        ("multi_hop", multi_hop), ("exact_term", exact_term),
                                        ("wrong_passage", wrong_passage), ("routing", routing), ("other", other))


def verdict(ev: Evidence) -> tuple[str, str]:
    """(verdict, evidence): the first rule of :data:`LADDER` that applies."""
    for name, rule in LADDER:
        said = rule(ev)
        if said:
            return name, said
    raise AssertionError("the last rule always applies")


# ------------------------------------------------------------------------------------------ the two sources
def classify(row: Mapping[str, Any], ranking: Sequence[str], corpus_meta: Mapping[str, Mapping[str, Any]], *,
             bm25: Sequence[str] | None = None, dense: Sequence[str] | None = None,
             route_rankings: Mapping[str, Sequence[str]] | None = None) -> tuple[str, str] | None:
    """(verdict, evidence) for a run's query; None when it did not fail (every gold document in the top k,
    every gold span in the context, no superseded version first)."""
    facts = RunFacts(row, ranking, corpus_meta, bm25, dense, route_rankings)
    ev = Evidence(int(row["k"]), run=facts)
    if facts.found == facts.gold and not facts.span_fail and stale_version(ev) is None:
        return None
    return verdict(ev)


def trace_cause(trace: Trace, missed: Sequence[str], pieces: Sequence[tuple[str, bool, str]], texts: Sequence[str],
                ctx_docs: Sequence[str | None], gold: Mapping[str, list[str]], view: CorpusView | None,
                k: int, *, maybe: Sequence[str] = ()) -> tuple[str, str]:
    """(verdict, evidence) for a trace whose reference did not reach the context. ``ctx_docs``: each passage's
    document, None where unknown or ambiguous; ``maybe``: the documents an ambiguous passage may be from."""
    return verdict(Evidence(k, trace=TraceFacts(trace, missed, pieces, texts, ctx_docs, gold, view, maybe)))


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
    """Where the evidence's document ranks here and in each companion run (BM25, dense, ``versions=filter``, all
    over ``chunker=sections`` chunks), and a fix only when the companion run for that fix ranks it higher than
    this trace did and within ``k``."""
    if view is None:
        return ""
    docs = sorted({d for p in missed for d in gold.get(p, [])})
    if not docs:
        return "the evidence is not in the corpus: no retrieval setting can find it"
    d = docs[0]
    passage_level = verdict in ("chunk_boundary", "wrong_passage")  # the document was retrieved, the evidence whole was not
    here = None if passage_level else next((i + 1 for i, c in enumerate(trace.contexts) if view.doc_of(c, matcher) == d), None)
    companions = getattr(view, "companions", None)  # the runs --companions kept (all, where a view does not say)
    ran = [n for n in ("bm25", "dense", "versions=filter") if companions is None or n in companions]
    ranks = {n: view.rank(n, trace.id, d) for n in ran}
    shown = ", ".join(f"{n} #{r}" if r else f"{n} not in the top 100" for n, r in ranks.items()) or "no companion runs"
    whole = all(view.whole_in_section_chunk(p, dd, matcher) for p in missed for dd in gold.get(p, [])[:1])

    def better(name: str) -> bool:
        r = ranks.get(name)
        return r is not None and r <= k and (here is None or r < here)

    candidates = {"stale_version": [("versions=filter", "versions=filter")],
                  "chunk_boundary": [("chunker=sections", n) for n in ("bm25", "dense") if whole],
                  "wrong_passage": [("chunker=sections", n) for n in ("bm25", "dense") if whole],
                  "exact_term": [("retriever=bm25 or retriever=hybrid", "bm25")],
                  "other": [(f"retriever={n}", n) for n in ("bm25", "dense")]}.get(verdict, [])
    offer = next(((fix, n) for fix, n in candidates if better(n)), None)
    where = (f"here #{here}" if here else "here no context holds the evidence whole" if passage_level
             else f"here not among the {len(trace.contexts)} contexts")
    return (f"{d}: {where}; {shown} (chunker=sections)"
            + ("; a chunker=sections chunk holds the reference whole" if whole else "")
            + (f"; try {offer[0]} ({offer[1]} ranks it #{ranks[offer[1]]})" if offer else
               "; no companion run ranks it higher" if verdict != "multi_hop" else "; no companion run checks decomposition"))
