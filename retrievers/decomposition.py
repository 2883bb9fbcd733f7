"""Query decomposition for multi-hop questions: sub-queries retrieved separately, fused per question.

A question that needs evidence from several documents gets one query vector (or one bag of words), which
finds the most similar document and misses the rest. Decomposers turn it into several sub-queries;
:class:`DecomposingRetriever` retrieves for each and fuses the candidate lists per question (the number of
sub-queries varies per question, so fusion is a per-question function, not ``ranx.fuse``).

* ``none`` — the single-query baseline;
* ``heuristic`` — deterministic rules, no model: comparison questions ("Which is older, X or Y?", "Are A
  and B both ...?", "Who was born first, A or B?") become one sub-query per entity; bridge questions with
  a confident relative clause ("... the woman who portrayed Corliss Archer in ...") get that clause, with
  its head noun, as a sub-query; the question itself is always retrieved too;
* ``iterative`` — no language model: hop 1 retrieves for the question; each later hop follows the top-``m``
  documents so far. ``follow=title`` issues the question plus that document's title (and, with
  ``first_sentence``, its first sentence) as a new query — the classic idea of conditioning the next hop
  on the previous passage (Xiong et al., ICLR 2021, multi-hop dense retrieval). ``follow=links`` instead
  follows the document's links: the documents whose titles it mentions (Wikipedia hyperlinks, approximated
  by title mentions — the signal graph-based retrievers such as Asai et al., ICLR 2020 use), ranked by the
  question's own scores and placed right after the document that mentions them;
* ``gold`` — the dataset's decomposition (an oracle): MuSiQue ``question_decomposition`` with ``#k``
  replaced by step k's gold answer, or BREAK QDMR steps with ``#k`` replaced by the top-ranked title
  retrieved for step k; questions without one fall back to the question alone and are counted;
* ``llm`` — an OpenAI-compatible chat endpoint (:mod:`retrievers.llm`).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Sequence

from chunkers.types import Chunk, Query
from retrievers.base import top_k_of
from retrievers.fusion import PER_QUERY, fuse_rankings
from retrievers.stage import Stage, as_stage, count, owner_lists
from retrievers.types import Ranking, Run
from chunkers.options import Options, integer, one_of

FUSIONS = PER_QUERY


class Decomposer:
    """Base class. ``hops`` rounds of sub-queries follow the question's own retrieval; ``subqueries``
    returns the texts to retrieve in round ``hop`` (from 1) given ``history`` — (text, ranked doc ids) of
    every retrieval so far, the question first; ``combine`` turns the rankings into the final one."""

    OPTIONS: ClassVar[Options] = {"fusion": one_of(*FUSIONS), "rrf_k": integer(1)}

    hops = 0
    depth = 0  # retrieval depth wanted for the question itself (0: top_k)

    def __init__(self, *, fusion: str = "rrf", rrf_k: int = 60) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"decomposer.fusion must be one of {'|'.join(FUSIONS)}, got {fusion!r}")
        self.fusion, self.rrf_k = fusion, int(rrf_k)

    def begin(self, queries: Sequence[Query]) -> None:
        """Called once per search, before any retrieval."""

    def subqueries(self, query: Query, hop: int, history: list[tuple[str, list[str]]], ctx: "DecomposingRetriever") -> list[str]:
        return []

    def combine(self, query: Query, rankings: list[dict[str, float]], ctx: "DecomposingRetriever", top_k: int) -> dict[str, float]:
        if len(rankings) == 1:
            return top_k_of(rankings[0], top_k)
        return fuse_rankings(rankings, method=self.fusion, rrf_k=self.rrf_k, top_k=top_k)

    def covered(self, query: Query) -> bool:
        """Whether this question was decomposed at all (gold/llm fall back to the question alone)."""
        return True

    def stats(self) -> dict[str, float]:
        """The decomposer's own counters (e.g. LLM requests); none by default."""
        return {}

    def __call__(self, inner: Any) -> Any:
        """The ``decomposer`` group as a pipeline stage factory: wrap the stage before."""
        return DecomposingRetriever(retriever=inner, decomposer=self)


class NoDecomposer(Decomposer):
    """``decomposer=none``: the question alone (one retrieval call); as a stage factory it returns the
    stage before unchanged."""

    def covered(self, query: Query) -> bool:
        return False

    def __call__(self, inner: Any) -> Any:
        return inner


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
# "... the woman who portrayed Corliss Archer in the film Kiss and Tell?": head noun phrase + relative clause
_BRIDGE = re.compile(r"\b(?P<head>(?:the|a|an|this|that)\s+(?:[\w'-]+\s+){0,3}?[\w'-]+)\s+(?P<rel>who|whom|whose|which|that|where)\s+"
                     r"(?P<clause>[^?,;]+)", re.I)


class HeuristicDecomposer(Decomposer):
    """``decomposer=heuristic``: comparison questions -> one sub-query per entity (the name alone: a shared
    predicate would pull the same distractors into every list); bridge questions -> the relative clause
    with its head noun, when it has at least ``min_clause_words`` words; otherwise the question alone."""

    OPTIONS: ClassVar[Options] = {"min_clause_words": integer(1)}

    hops = 1

    def __init__(self, *, bridge: bool = True, min_clause_words: int = 3, fusion: str = "rrf", rrf_k: int = 60) -> None:
        super().__init__(fusion=fusion, rrf_k=rrf_k)
        self.bridge, self.min_clause_words = bridge, int(min_clause_words)

    def split(self, text: str) -> list[str]:
        text = text.strip()
        for pattern in _COMPARE:
            m = pattern.match(text)
            if not m:
                continue
            a, b = m.group("a").strip(" \"'"), m.group("b").strip(" \"'")
            if a and b and len(a) <= 80 and len(b) <= 80:
                return [a, b]
        if self.bridge:
            m = _BRIDGE.search(text)
            if m and len(m.group("clause").split()) >= self.min_clause_words and m.start() > 0:
                return [f"{m.group('head')} {m.group('rel')} {m.group('clause').strip()}"]
        return []

    def subqueries(self, query, hop, history, ctx):
        return self.split(query.text) if hop == 1 else []

    def covered(self, query: Query) -> bool:
        return bool(self.split(query.text))


class IterativeDecomposer(Decomposer):
    """``decomposer=iterative``: ``hops`` hops in all (the question's own retrieval is hop 1). Each later hop
    follows the top-``m`` documents not yet followed: ``follow=title`` retrieves the question plus the
    document's title (plus its first sentence with ``first_sentence``); ``follow=links`` places, right after
    the document, up to ``links`` documents whose titles it mentions, best question score first (no extra
    retrieval call: the question is retrieved to ``depth`` instead)."""

    FOLLOW = ("title", "links")
    OPTIONS: ClassVar[Options] = {"hops": integer(1), "m": integer(1), "follow": one_of(*FOLLOW), "links": integer(1),
                                  "depth": integer(1)}


    def __init__(self, *, hops: int = 2, m: int = 2, follow: str = "title", first_sentence: bool = False,
                 links: int = 2, depth: int = 1000, fusion: str = "rrf", rrf_k: int = 60) -> None:
        super().__init__(fusion=fusion, rrf_k=rrf_k)
        if int(hops) < 1 or int(m) < 1 or int(links) < 1:
            raise ValueError(f"decomposer.hops, decomposer.m and decomposer.links must be >= 1, got hops={hops}, m={m}, links={links}")
        if follow not in self.FOLLOW:
            raise ValueError(f"decomposer.follow must be one of {'|'.join(self.FOLLOW)}, got {follow!r}")
        self.m, self.follow, self.first_sentence, self.links = int(m), follow, bool(first_sentence), int(links)
        self.total_hops = int(hops)
        self.hops = self.total_hops - 1 if follow == "title" else 0
        self.depth = int(depth) if follow == "links" else 0
        self._followed: dict[str, set[str]] = {}

    def begin(self, queries):
        self._followed = {q.id: set() for q in queries}

    def subqueries(self, query, hop, history, ctx):
        ranking = fuse_rankings([dict((d, -i) for i, d in enumerate(ids)) for _, ids in history], method=self.fusion,
                                rrf_k=self.rrf_k) if len(history) > 1 else dict((d, -i) for i, d in enumerate(history[0][1]))
        out, seen = [], self._followed.setdefault(query.id, set())
        for doc in [d for d in ranking if d not in seen][: self.m]:
            seen.add(doc)
            extra = ctx.titles.get(doc, "")
            if self.first_sentence:
                extra = f"{extra} {ctx.first_sentence(doc)}".strip()
            if extra:
                out.append(f"{query.text} {extra}")
        return out

    def combine(self, query, rankings, ctx, top_k):
        if self.follow == "title":
            return super().combine(query, rankings, ctx, top_k)
        scores = rankings[0]
        order = list(top_k_of(scores))
        expanded: set[str] = set()
        for _ in range(self.total_hops - 1):
            out: list[str] = []
            placed: set[str] = set()
            todo = [d for d in order if d not in expanded][: self.m]
            for doc in order:
                if doc in placed:
                    continue
                out.append(doc)
                placed.add(doc)
                if doc in todo:
                    expanded.add(doc)
                    linked = [d for d in ctx.links(doc) if d not in placed]
                    # best question score first; documents beyond the question's depth after, in mention order
                    linked.sort(key=lambda d: (d not in scores, -scores.get(d, 0.0)))
                    for d in linked[: self.links]:
                        out.append(d)
                        placed.add(d)
            order = out
        return {d: float(len(order) - i) for i, d in enumerate(order[:top_k])}


_REF = re.compile(r"#(\d+)")


class GoldDecomposer(Decomposer):
    """``decomposer=gold`` (an oracle): the dataset's decomposition in the query metadata —
    ``question_decomposition`` (MuSiQue: ``#k`` -> step k's gold ``answer``, all steps in one round) or
    ``qdmr`` (BREAK steps attached by the loader's ``decompositions`` option: ``#k`` -> the title of the top
    document retrieved for step k, so steps are issued in dependency order, one round per level)."""

    hops = 8  # rounds stop as soon as no step is left

    def __init__(self, *, fusion: str = "rrf", rrf_k: int = 60) -> None:
        super().__init__(fusion=fusion, rrf_k=rrf_k)
        self._state: dict[str, dict[str, Any]] = {}

    @staticmethod
    def steps(query: Query) -> tuple[list[str], list[str | None]] | None:
        """Step texts and, where the dataset gives them, step answers (None: resolved by retrieval)."""
        qd = query.metadata.get("question_decomposition")
        if qd:
            return [str(s.get("question", "")) for s in qd], [s.get("answer") for s in qd]
        steps = query.metadata.get("qdmr")
        return ([str(s) for s in steps], [None] * len(steps)) if steps else None

    def begin(self, queries):
        self._state = {q.id: {"issued": {}} for q in queries}

    def covered(self, query: Query) -> bool:
        return self.steps(query) is not None

    def subqueries(self, query, hop, history, ctx):
        found = self.steps(query)
        if not found:
            return []
        texts, answers = found
        state = self._state.setdefault(query.id, {"issued": {}})
        issued: dict[int, int] = state["issued"]  # step index -> position in history
        out = []
        for i, text in enumerate(texts):
            if i in issued:
                continue
            refs = [int(r) - 1 for r in _REF.findall(text)]
            values = {}
            for r in refs:
                if 0 <= r < len(texts) and answers[r]:
                    values[r] = str(answers[r])
                elif r in issued and issued[r] < len(history) and history[issued[r]][1]:
                    values[r] = ctx.titles.get(history[issued[r]][1][0], "")
                else:
                    break
            else:
                issued[i] = len(history) + len(out)
                out.append(_REF.sub(lambda m: values.get(int(m.group(1)) - 1, ""), text).strip())
        return out


class DecomposingRetriever:
    """A stage wrapping the stage before it: the question and its sub-queries are ranked by that stage and
    combined per question by the decomposer. ``calls`` counts base-retriever searches per question (the
    stage before's calls of the question and of each sub-query)."""

    def __init__(self, *, retriever: Any, decomposer: Decomposer, aggregate: str = "max") -> None:
        self.inner: Stage = as_stage(retriever, aggregate=aggregate)
        self.decomposer = decomposer
        self.titles: dict[str, str] = {}
        self._chunks: Sequence[Chunk] = []
        self._by_doc: dict[str, list[int]] = {}
        self._links: dict[str, list[str]] = {}
        self._title_index: dict[str, list[str]] | None = None
        self._max_words = 1

    def index(self, chunks: Sequence[Chunk]) -> None:
        self.inner.index(chunks)
        self._chunks = chunks
        self.titles = {}
        for c in chunks:
            self.titles.setdefault(c.doc_id, c.title)
        self._by_doc = {}
        for i, c in enumerate(chunks):
            self._by_doc.setdefault(c.doc_id, []).append(i)
        self._links, self._title_index = {}, None

    def doc_text(self, doc: str) -> str:
        return " ".join(self._chunks[i].text for i in self._by_doc.get(doc, []))

    def first_sentence(self, doc: str) -> str:
        text = self.doc_text(doc).strip()
        return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0] if text else ""

    @staticmethod
    def title_key(title: str) -> str:
        """A title as it would be mentioned: lower case, words only, a trailing "(disambiguation)" dropped."""
        return " ".join(re.findall(r"\w+", re.sub(r"\s*\([^)]*\)\s*$", "", title).lower()))

    def links(self, doc: str) -> list[str]:
        """Documents whose titles ``doc``'s text mentions (whole words, titles of >= 4 characters), in order of
        first mention; computed on demand and memoised."""
        if doc in self._links:
            return self._links[doc]
        if self._title_index is None:
            self._title_index = {}
            for d, t in self.titles.items():
                key = self.title_key(t)
                if len(key) >= 4:
                    self._title_index.setdefault(key, []).append(d)
            self._max_words = min(12, max((k.count(" ") + 1 for k in self._title_index), default=1))
        words = re.findall(r"\w+", self.doc_text(doc).lower())
        out: list[str] = []
        for i in range(len(words)):
            for n in range(min(self._max_words, len(words) - i), 0, -1):
                for d in self._title_index.get(" ".join(words[i:i + n]), ()):
                    if d != doc and d not in out:
                        out.append(d)
        self._links[doc] = out
        return out

    def rank(self, queries: Sequence[Query], *, top_k: int) -> Ranking:
        from tqdm.auto import tqdm

        dec = self.decomposer
        dec.begin(queries)
        depth = max(top_k, int(dec.depth or 0))
        chunk_lists: dict[str, list[dict[str, float]]] = {q.id: [] for q in queries}
        base = self.inner.rank(queries, top_k=depth) if queries else Ranking({})
        owner_lists(base, {}, chunk_lists)
        calls = {q.id: base.calls.get(q.id, 1.0) for q in queries}
        stats = base.stats
        rankings = {q.id: [base.run.get(q.id, {})] for q in queries}
        history = {q.id: [(q.text, list(top_k_of(base.run.get(q.id, {}))))] for q in queries}
        for hop in tqdm(range(1, dec.hops + 1), desc="decomposition hops", leave=False, disable=None if dec.hops > 1 else True):
            subs, owner = [], {}
            for q in queries:
                for i, text in enumerate(dec.subqueries(q, hop, history[q.id], self)):
                    sid = f"{q.id}\x1fh{hop}s{i}"
                    subs.append(Query(sid, text))
                    owner[sid] = q.id
            if not subs:
                break
            sub = self.inner.rank(subs, top_k=top_k)
            owner_lists(sub, owner, chunk_lists)
            stats = sub.stats
            for s in subs:
                qid = owner[s.id]
                ranking = sub.run.get(s.id, {})
                rankings[qid].append(ranking)
                history[qid].append((s.text, list(top_k_of(ranking))))
                calls[qid] += sub.calls.get(s.id, 1.0)
        out: Run = {}
        records: dict[str, dict[str, Any]] = {}
        for q in queries:
            out[q.id] = dec.combine(q, rankings[q.id], self, top_k)
            records[q.id] = {"query_id": q.id, "subqueries": [t for t, _ in history[q.id][1:]],
                             "retrieval_calls": count(calls[q.id]), "decomposed": bool(dec.covered(q))}
        stats = {**stats, **dec.stats()}
        if records:
            stats["decomposed_share"] = sum(r["decomposed"] for r in records.values()) / len(records)
            stats["decomposed_queries"] = float(sum(r["decomposed"] for r in records.values()))
        return Ranking(out, chunk_lists=chunk_lists, records=records, calls=calls, stats=stats)
