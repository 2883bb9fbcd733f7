"""Query decomposition for multi-hop questions: sub-queries retrieved separately, fused per question.

A question that needs evidence from several documents gets one query vector (or one bag of words), which
finds the most similar document and misses the rest. Decomposers turn it into several sub-queries;
:class:`DecomposingRetriever` retrieves for each and fuses the candidate lists per question.

* ``none`` — the single-query baseline;
* ``heuristic`` — deterministic rules: comparison questions ("Which is older, X or Y?", "Are A and B
  both ...?", "Who was born first, A or B?") become one sub-query per entity plus the original;
* ``iterative`` — no language model: hop 1 retrieves for the question, hop 2 issues one follow-up per
  top-``m`` hop-1 document (the question plus that document's title), the classic multi-hop retrieval
  idea (e.g. Xiong et al., ICLR 2021, "Answering Complex Open-Domain Questions with Multi-Hop Dense
  Retrieval", which conditions the second hop on the first hop's passage).
"""

from __future__ import annotations

import re
from typing import Mapping, Protocol, Sequence

from chunkers.types import Chunk, Query, Run
from retrievers.base import Retriever, aggregate_to_docs
from retrievers.fusion import PER_QUERY, fuse_rankings

FUSIONS = PER_QUERY  # the number of sub-queries varies per question: fused per question


class Decomposer(Protocol):
    """``hops`` rounds; ``subqueries`` gives a question's extra sub-queries for round ``hop`` (from 1),
    given the documents retrieved so far (doc ids in rank order) and their titles."""

    hops: int

    def subqueries(self, query: Query, hop: int, retrieved: Sequence[str], titles: Mapping[str, str]) -> list[str]: ...


class NoDecomposer:
    """``decomposer=none``: the question alone (one retrieval call)."""

    hops = 0

    def subqueries(self, query: Query, hop: int, retrieved: Sequence[str], titles: Mapping[str, str]) -> list[str]:
        return []


_COMPARE = [
    # "Which is older, X or Y?" / "Who was born first, X or Y?"
    re.compile(r"^(?P<head>(?:which|who|what)\b[^,?]*?),\s*(?P<a>[^,?]+?)\s+or\s+(?P<b>[^,?]+?)\s*\??$", re.I),
    # "Are X and Y both ...?" / "Were X and Y both ...?"
    re.compile(r"^(?:are|were|is|was|do|did|does)\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+both\b(?P<rest>.*?)\??$", re.I),
    # "Which X, A or B, ...?"
    re.compile(r"^(?P<head>.*?),\s*(?P<a>[^,?]+?)\s+or\s+(?P<b>[^,?]+?)\s*,(?P<rest>.*?)\??$", re.I),
    # "Are X and Y of the same nationality?" / "Do X and Y have ...?"
    re.compile(r"^(?:are|were|do|did|does|is|was)\s+(?P<a>[A-Z][^?]*?)\s+and\s+(?P<b>[A-Z][^?]*?)\s+(?P<rest>(?:of|from|in|have|has|located|the same|both)\b.*?)\??$"),
]


class HeuristicDecomposer:
    """``decomposer=heuristic``: one sub-query per compared entity (the entity's name alone) when a
    comparison pattern matches confidently; otherwise nothing beyond the question itself."""

    hops = 1

    def subqueries(self, query: Query, hop: int, retrieved: Sequence[str], titles: Mapping[str, str]) -> list[str]:
        text = query.text.strip()
        for pattern in _COMPARE:
            m = pattern.match(text)
            if not m:
                continue
            parts = m.groupdict()
            a, b = parts["a"].strip(" \"'"), parts["b"].strip(" \"'")
            if not a or not b or len(a) > 80 or len(b) > 80:
                continue
            # entity alone: the shared predicate ("who is older", "from the United States") would pull the
            # same distractors into every list, and RRF rewards documents common to all lists
            return [a, b]
        return []


class IterativeDecomposer:
    """``decomposer=iterative``: hop h+1 issues, per top-``m`` document of the results so far, the question
    plus that document's title (and, with ``first_sentence``, its first sentence)."""

    def __init__(self, *, hops: int = 2, m: int = 2, first_sentence: bool = False) -> None:
        if int(hops) < 1 or int(m) < 1:
            raise ValueError(f"decomposer.hops and decomposer.m must be >= 1, got hops={hops}, m={m}")
        self.hops, self.m, self.first_sentence = int(hops) - 1, int(m), first_sentence
        self.first: dict[str, str] = {}

    def subqueries(self, query: Query, hop: int, retrieved: Sequence[str], titles: Mapping[str, str]) -> list[str]:
        out = []
        for doc in retrieved[: self.m]:
            extra = titles.get(doc, "")
            if self.first_sentence and self.first.get(doc):
                extra = f"{extra} {self.first[doc]}"
            if extra:
                out.append(f"{query.text} {extra}")
        return out


class DecomposingRetriever:
    """Wraps a retriever: the question plus its sub-queries are retrieved, folded to documents and fused
    per question. Logs ``retrieval_calls`` (queries sent to the base retriever) per question."""

    returns_docs = True

    def __init__(self, *, retriever: Retriever, decomposer: Decomposer, fusion: str = "rrf", rrf_k: int = 60,
                 aggregate: str = "max") -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"decomposer.fusion must be one of {'|'.join(FUSIONS)}, got {fusion!r}")
        self.retriever, self.decomposer, self.fusion, self.rrf_k, self.aggregate = retriever, decomposer, fusion, int(rrf_k), aggregate
        self.calls: dict[str, int] = {}
        self._c2d: dict[str, str] = {}
        self._titles: dict[str, str] = {}
        self._ratio = 1

    def index(self, chunks: Sequence[Chunk]) -> None:
        self.retriever.index(chunks)
        self._c2d = {c.id: c.doc_id for c in chunks}
        self._titles = {}
        first: dict[str, str] = {}
        for c in chunks:
            self._titles.setdefault(c.doc_id, c.title)
            first.setdefault(c.doc_id, re.split(r"(?<=[.!?])\s", c.text.strip(), maxsplit=1)[0] if c.text else "")
        if hasattr(self.decomposer, "first"):
            self.decomposer.first = first
        self._ratio = max(1, round(len(chunks) / max(1, len(self._titles))))

    def _doc_runs(self, queries: Sequence[Query], top_k: int) -> Run:
        if not queries:
            return {}
        run = self.retriever.search(queries, top_k=top_k) if getattr(self.retriever, "returns_docs", False) else \
            aggregate_to_docs(self.retriever.search(queries, top_k=top_k * self._ratio), self._c2d,
                              mode=self.aggregate, top_k=top_k)
        return run

    def search(self, queries: Sequence[Query], *, top_k: int) -> Run:
        rankings: dict[str, list[dict[str, float]]] = {q.id: [] for q in queries}
        base = self._doc_runs(queries, top_k)
        for q in queries:
            rankings[q.id].append(base.get(q.id, {}))
            self.calls[q.id] = 1
        current = {q.id: base.get(q.id, {}) for q in queries}
        for hop in range(1, self.decomposer.hops + 1):
            subs: list[Query] = []
            owner: dict[str, str] = {}
            for q in queries:
                for i, text in enumerate(self.decomposer.subqueries(q, hop, list(current[q.id]), self._titles)):
                    sid = f"{q.id}\x1fh{hop}s{i}"
                    subs.append(Query(sid, text))
                    owner[sid] = q.id
            if not subs:
                break
            sub_run = self._doc_runs(subs, top_k)
            for sid, qid in owner.items():
                rankings[qid].append(sub_run.get(sid, {}))
                self.calls[qid] += 1
            current = {q.id: fuse_rankings(rankings[q.id], method=self.fusion, rrf_k=self.rrf_k, top_k=top_k)
                       for q in queries}
        return {q.id: fuse_rankings(rankings[q.id], method=self.fusion, rrf_k=self.rrf_k, top_k=top_k)
                if len(rankings[q.id]) > 1 else rankings[q.id][0] for q in queries}

    def stats(self) -> dict[str, float]:
        out = dict(self.retriever.stats()) if hasattr(self.retriever, "stats") else {}
        if self.calls:
            out["retrieval_calls_mean"] = sum(self.calls.values()) / len(self.calls)
        return out
