"""Label-free diagnosis: what looks wrong with a query's retrieval when nobody has judged it.

``rbench-audit`` computes these for every query of a run, judged or not (and ``--traces`` for every logged
query of a production system). Each signal is a (name, evidence) pair with the example that fired it:

* ``retriever_disagreement`` — BM25 and dense share fewer than ``min_overlap`` of their top-k documents
  (overlap@k = shared / min(k, ranked)); one of them is probably missing what the other found;
* ``missing_identifier`` — an identifier of the query (a code with digits, a section number, a quoted name,
  a number) appears nowhere in the top-k context but does appear in the corpus;
* ``stale_in_top_k`` — a superseded (``superseded_by``) or ``deprecated`` document is in the top k;
* ``cut_unit`` — a retrieved chunk's boundary falls inside a structural unit (a section, numbered clause,
  step, list item or Q&A pair) that would have fit in the chunk whole;
* ``low_margin`` — the top two documents' scores differ by less than ``min_margin`` (relative), so the
  order at the top is a coin toss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from chunkers.types import Chunk, Document
from chunkers.structure import heading_level, units
from retrievers.query_features import identifiers
from retrievers.versions import is_stale

SIGNALS = ("retriever_disagreement", "missing_identifier", "stale_in_top_k", "cut_unit", "low_margin")
DESCRIPTIONS = {
    "retriever_disagreement": "BM25 and dense disagree (low overlap@k)",
    "missing_identifier": "an identifier of the query is in the corpus but not in the context",
    "stale_in_top_k": "a superseded or deprecated document is in the top k",
    "cut_unit": "a retrieved chunk cuts a section, clause, step or list item",
    "low_margin": "the top two scores are nearly tied",
}


def _term_pattern(term: str) -> re.Pattern:
    left = r"(?<!\w)" if term[:1].isalnum() else ""
    right = r"(?!\w)" if term[-1:].isalnum() else ""
    return re.compile(left + re.escape(term.lower()) + right)


def structural_units(text: str) -> list[tuple[str, int, int]]:
    """``(kind, start, end)`` of every section (heading to the next heading of the same or a higher level),
    numbered clause, step, Q&A pair and list item of a document."""

    out: list[tuple[str, int, int]] = []
    found = units(text, {"clause", "step", "question"})
    heads = [(u[1], heading_level(u[3])) for u in found if u[0] == "heading"]
    for i, (start, level) in enumerate(heads):
        end = next((s for s, lv in heads[i + 1:] if lv <= level), len(text.rstrip()))
        out.append(("section", start, end))
    out += [(u[0], u[1], u[2]) for u in found if u[0] in ("clause", "step", "question")]
    pos = 0
    for line in text.split("\n"):
        stripped = line.lstrip()
        if re.match(r"[-*•]\s+\S", stripped):
            start = pos + len(line) - len(stripped)
            out.append(("list item", start, pos + len(line.rstrip())))
        pos += len(line) + 1
    return out


@dataclass
class Corpus:
    """What the signals read from a corpus, computed once per audit."""

    docs: Mapping[str, Document]
    lowered: Mapping[str, str]
    _units: dict[str, list[tuple[str, int, int]]]
    _joined: str = ""  # every lowered text, joined by NULs (built on the first holding())
    _starts: list[int] | None = None  # offset of each document in _joined
    _ids: list[str] | None = None  # document at each offset

    @classmethod
    def of(cls, docs: Iterable[Document]) -> "Corpus":
        docs = {d.id: d for d in docs}
        return cls(docs, {i: f"{d.title}\n{d.text}".lower() for i, d in docs.items()}, {})

    def units(self, doc_id: str) -> list[tuple[str, int, int]]:
        if doc_id not in self._units:
            d = self.docs.get(doc_id)
            self._units[doc_id] = structural_units(d.text) if d is not None else []
        return self._units[doc_id]

    def holding(self, term: str, limit: int = 3) -> list[str]:
        """The first ``limit`` documents containing ``term`` as a whole token: one search over the joined
        corpus (C speed, so a run-time audit of a large corpus stays cheap), then a check of each hit."""
        import bisect

        if self._starts is None:
            self._ids = list(self.lowered)
            self._starts, pos, parts = [], 0, []
            for i in self._ids:
                self._starts.append(pos)
                parts.append(self.lowered[i])
                pos += len(self.lowered[i]) + 1
            self._joined = "\x00".join(parts)
        # str.find (a fast C substring search) proposes, the token-boundary pattern checks each proposal there:
        # 10-50x faster than running the regex over the whole corpus
        pat, needle, joined = _term_pattern(term), term.lower(), self._joined
        out: list[str] = []
        pos = joined.find(needle) if needle else -1
        while pos != -1:
            if pat.match(joined, pos):
                d = self._ids[bisect.bisect_right(self._starts, pos) - 1]
                if d not in out:
                    out.append(d)
                    if len(out) >= limit:
                        break
            pos = joined.find(needle, pos + 1)
        return out


def overlap(a: Sequence[str], b: Sequence[str], k: int) -> float | None:
    n = min(k, max(len(a[:k]), len(b[:k])))
    if n == 0:
        return None
    return len(set(a[:k]) & set(b[:k])) / n


def cut_units(chunks: Sequence[Chunk], corpus: Corpus) -> list[str]:
    """Descriptions of the structural units the boundaries of these chunks cut (each unit once)."""
    order = {"clause": 0, "step": 1, "list item": 2, "question": 3, "section": 4}
    out, seen = [], set()
    for c in chunks:
        for kind, s, e in sorted(corpus.units(c.doc_id), key=lambda u: order.get(u[0], 5)):
            if e - s > c.end - c.start or (c.doc_id, s, e) in seen:
                continue  # a unit longer than the chunk has to be cut somewhere
            if s < c.start < e or s < c.end < e:
                seen.add((c.doc_id, s, e))
                text = corpus.docs[c.doc_id].text[s:e].split("\n", 1)[0]
                side = "starts" if s < c.start < e else "ends"
                out.append(f"chunk {c.id} {side} inside a {kind} of {c.doc_id}: {text[:70]!r}")
    return out


def query_signals(query: str, docs: Sequence[str], scores: Sequence[float], corpus: Corpus, *, k: int = 10,
                  context_chunks: Sequence[Chunk] | None = None, context_texts: Sequence[str] | None = None,
                  bm25: Sequence[str] | None = None, dense: Sequence[str] | None = None,
                  min_overlap: float = 0.3, min_margin: float = 0.02) -> list[dict[str, str]]:
    """Every signal that fires for one query, as ``{"signal", "evidence"}``. ``docs``/``scores``: the
    ranked documents; the context is ``context_chunks`` (the top-k chunks) or ``context_texts`` (a trace's
    passages), else the top-k documents' text."""

    out: list[dict[str, str]] = []
    if bm25 is not None and dense is not None:
        ov = overlap(bm25, dense, k)
        if ov is not None and ov < min_overlap:
            only_b = [d for d in bm25[:3] if d not in dense[:k]]
            out.append({"signal": "retriever_disagreement",
                        "evidence": f"overlap@{k} {ov:.2f}: BM25 and dense share {len(set(bm25[:k]) & set(dense[:k]))} of "
                                    f"their top {k}" + (f"; BM25's {only_b[0]} is not in dense's" if only_b else "")})
    if context_texts is not None:
        context = "\n".join(context_texts).lower()
    elif context_chunks is not None:
        context = "\n".join(f"{c.title}\n{c.text}" for c in context_chunks).lower()
    else:
        context = "\n".join(corpus.lowered.get(d, "") for d in docs[:k])
    for term in identifiers(query):
        if _term_pattern(term).search(context):
            continue
        holders = corpus.holding(term)
        if holders:
            out.append({"signal": "missing_identifier",
                        "evidence": f"{term!r} is in {', '.join(holders)} but not in the top-{k} context"})
    for rank, d in enumerate(docs[:k], 1):
        doc = corpus.docs.get(d)
        if doc is not None and is_stale(doc.metadata):
            why = (f"superseded by {doc.metadata['superseded_by']}" if doc.metadata.get("superseded_by") else "deprecated")
            out.append({"signal": "stale_in_top_k", "evidence": f"{d} at rank {rank} is {why}"})
            break
    if context_chunks:
        cuts = cut_units(context_chunks, corpus)
        if cuts:
            more = f" (+{len(cuts) - 1} more)" if len(cuts) > 1 else ""
            out.append({"signal": "cut_unit", "evidence": cuts[0] + more})
    if len(scores) >= 2:
        s1, s2 = float(scores[0]), float(scores[1])
        margin = (s1 - s2) / max(abs(s1), 1e-12)
        if margin < min_margin:
            out.append({"signal": "low_margin", "evidence": f"top two scores {s1:.4g} ({docs[0]}) and {s2:.4g} ({docs[1]}): "
                                                            f"margin {margin:.1%}"})
    return out


def signal_table(per_query: Mapping[str, Sequence[Mapping[str, str]]], n_queries: int) -> list[str]:
    """Markdown lines: each signal, how many queries it fired for, and one example."""
    from collections import Counter

    counts = Counter(s["signal"] for sigs in per_query.values() for s in {x["signal"]: x for x in sigs}.values())
    lines = [f"Label-free signals ({n_queries} queries, judged or not):", "",
             "| signal | queries | share | what it means | example |", "|---|---|---|---|---|"]
    for name in SIGNALS:
        example = next((f"{qid}: {s['evidence']}" for qid, sigs in per_query.items() for s in sigs if s["signal"] == name), "")
        lines.append(f"| {name} | {counts.get(name, 0)} | {counts.get(name, 0) / max(1, n_queries):.0%} | "
                     f"{DESCRIPTIONS[name]} | {example.replace('|', '/')[:140]} |")
    return lines


def as_rows(per_query: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, str]]:
    return [{"query_id": q, "signal": s["signal"], "evidence": s["evidence"]} for q, sigs in per_query.items() for s in sigs]
