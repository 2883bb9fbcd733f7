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
  order at the top is a coin toss;
* ``answer_unsupported`` — (traces with a generated answer) what the answer states is not in the contexts the
  model was given: a number, an identifier or a named entity of the answer that no context holds, or fewer
  than ``min_support`` (0.6) of its content words in the contexts. The unsupported pieces are shown.

A signal that cannot be computed for any query (no corpus for ``missing_identifier``/``cut_unit``, no companion
runs for ``retriever_disagreement``, no scores for ``low_margin``, no answers for ``answer_unsupported``) is
reported as *not computed*, with the reason, never as 0.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from chunkers.types import Chunk, Document
from chunkers.structure import heading_level, units
from retrievers.query_features import identifiers
from retrievers.text import Tokenizer, detect
from retrievers.versions import is_stale

SIGNALS = ("retriever_disagreement", "missing_identifier", "stale_in_top_k", "cut_unit", "low_margin", "answer_unsupported")
DESCRIPTIONS = {
    "retriever_disagreement": "BM25 and dense disagree (low overlap@k)",
    "missing_identifier": "an identifier of the query is in the corpus but not in the context",
    "stale_in_top_k": "a superseded or deprecated document is in the top k",
    "cut_unit": "a retrieved chunk cuts a section, clause, step or list item",
    "low_margin": "the top two scores are nearly tied",
    "answer_unsupported": "the generated answer states something the contexts do not hold",
}
MIN_SUPPORT = 0.6
_CAPITALISED = re.compile(r"[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_SENTENCE = re.compile(r"(?<=[.!?:;])\s+|\n+")
#: capitalised words that are not names
_STOP = frozenset("the a an i in on at if for yes no it its this that these those we you they he she please note "
                  "however also and or but so then there here when where what which who why how all any each our your "
                  "their my his her to of by with from as be is are was were".split())


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " " + " ".join(re.sub(r"[^\w]+", " ", text).split()) + " "


#: languages whose capitalised words are not names (German capitalises every noun)
NOUNS_CAPITALISED = frozenset({"de", "lb"})


def answer_claims(answer: str, language: str | None = None) -> list[str]:
    """The checkable pieces of an answer: identifiers and numbers (``retrievers.query_features.identifiers``),
    then named entities (capitalised runs not opening a sentence, in a language where capitals mark names: not
    German, whose nouns are all capitalised), without repeats. ``language``: detected when not given."""
    found = list(identifiers(answer))
    if (language or detect(answer)) in NOUNS_CAPITALISED:
        return found
    for sentence in _SENTENCE.split(answer):
        words = sentence.strip()
        first = re.match(r"\W*\w+", words)
        rest = words[first.end():] if first else words  # a sentence's first word is capitalised anyway
        for m in _CAPITALISED.finditer(rest):
            name = " ".join(w for w in m.group(0).split() if w.lower() not in _STOP)
            if name and not any(name in f or f in name for f in found):
                found.append(name)
    return found


def unsupported(answer: str, contexts: Sequence[str], tokenizer: Any = None) -> tuple[list[str], float]:
    """(claims of the answer that no context holds, share of the answer's content words the contexts hold)."""
    joined = _normalised("\n".join(contexts))
    tok = tokenizer or Tokenizer(language="auto")
    language = tok.language_of(answer)  # the answer and its contexts analysed alike, in the answer's language
    missing = [c for c in answer_claims(answer, language) if _normalised(c).strip() and _normalised(c) not in joined]
    want = set(tok(answer, language))
    have = set(tok("\n".join(contexts), language))
    return missing, (len(want & have) / len(want) if want else 1.0)



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
                  min_overlap: float = 0.3, min_margin: float = 0.02, answer: str | None = None,
                  min_support: float = MIN_SUPPORT) -> list[dict[str, str]]:
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
    if answer and context_texts is not None:
        missing, support = unsupported(answer, context_texts)
        if missing or support < min_support:
            shown = ", ".join(repr(m) for m in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
            out.append({"signal": "answer_unsupported",
                        "evidence": (f"the answer states {shown}, in none of the {len(context_texts)} contexts; " if missing else "")
                                    + f"{support:.0%} of its content words are in the contexts"})
    return out


def not_computed(*, corpus: bool = True, companions: bool = True, scores: bool = True, answers: bool = True,
                 chunks: bool = True) -> dict[str, str]:
    """The signals that cannot be computed with what is at hand (name -> why), for :func:`signal_table`."""
    out: dict[str, str] = {}
    if not companions:
        out["retriever_disagreement"] = ("needs BM25 and dense companion runs (rbench-audit --run-id, or --traces "
                                         "with --corpus)")
    if not corpus:
        out["missing_identifier"] = "needs the corpus the identifiers would be found in (--corpus)"
        out["stale_in_top_k"] = "needs the corpus's version metadata (--corpus)"
    if not corpus or not chunks:
        out["cut_unit"] = "needs the documents the passages come from (--corpus)"
    if not scores:
        out["low_margin"] = "no retrieval scores in the input"
    if not answers:
        out["answer_unsupported"] = ("no generated answers (a run has none; a trace's answer is its LLM span's "
                                     "output or an 'answer' field)")
    return out


def signal_table(per_query: Mapping[str, Sequence[Mapping[str, str]]], n_queries: int,
                 not_computed: Mapping[str, str] | None = None) -> list[str]:
    """Markdown lines: each signal, how many queries it fired for, and one example; a signal in
    ``not_computed`` (name -> why) is shown as not computed, never as 0."""
    from collections import Counter

    not_computed = not_computed or {}
    counts = Counter(s["signal"] for sigs in per_query.values() for s in {x["signal"]: x for x in sigs}.values())
    lines = [f"Label-free signals ({n_queries} queries, judged or not):", "",
             "| signal | queries | share | what it means | example |", "|---|---|---|---|---|"]
    for name in SIGNALS:
        if name in not_computed:
            lines.append(f"| {name} | not computed | — | {DESCRIPTIONS[name]} | {not_computed[name]} |")
            continue
        example = next((f"{qid}: {s['evidence']}" for qid, sigs in per_query.items() for s in sigs if s["signal"] == name), "")
        lines.append(f"| {name} | {counts.get(name, 0)} | {counts.get(name, 0) / max(1, n_queries):.0%} | "
                     f"{DESCRIPTIONS[name]} | {example.replace('|', '/')[:140]} |")
    return lines


def as_rows(per_query: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, str]]:
    return [{"query_id": q, "signal": s["signal"], "evidence": s["evidence"]} for q, sigs in per_query.items() for s in sigs]
