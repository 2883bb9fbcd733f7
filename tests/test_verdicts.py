"""The verdict ladder's explanations hold up against the evidence they cite (#21): cases whose truth is known
are generated, and every rank, count and suggestion an explanation states is checked against the inputs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from benchmarks.diagnosis.verdicts import LADDER, classify, suggest_fix
from chunkers.types import Chunk, Document

DOCS = [f"d{i}" for i in range(8)]


@st.composite
def run_case(draw):
    ranking = draw(st.permutations(DOCS).map(lambda p: list(p)[: draw(st.integers(2, 8))]))
    gold = set(draw(st.lists(st.sampled_from(DOCS), min_size=1, max_size=3, unique=True)))
    k = draw(st.integers(1, 5))
    top = ranking[:k]
    spans = []
    for d in sorted(gold & set(top)):
        if draw(st.booleans()):
            split = draw(st.booleans())
            rank = None if split else draw(st.one_of(st.none(), st.integers(1, 12)))
            spans.append({"doc_id": d, "start": 10, "end": 40, "split": split,
                          "in_context": False if split else draw(st.booleans()), "chunk_rank": rank})
    row = {"query_id": "q", "k": k, "gold_docs": sorted(gold), "spans": spans, "budget": 512,
           "context_chunks": draw(st.integers(1, 5))}
    if spans:
        row["span_level_ok"] = all(s["in_context"] for s in spans)
    meta = {}
    if draw(st.booleans()) and len(gold) == 1:  # a superseded predecessor of the gold document
        old = draw(st.sampled_from([d for d in DOCS if d not in gold]))
        meta[old] = {"superseded_by": next(iter(gold))}
    bm25 = draw(st.permutations(DOCS).map(list))
    dense = draw(st.permutations(DOCS).map(lambda p: list(p)[:6]))
    return row, ranking, meta, bm25, dense


def rank_of(doc, ranking):
    return ranking.index(doc) + 1 if doc in ranking else None


@settings(max_examples=400, deadline=None)
@given(run_case())
def test_run_explanations_state_true_ranks(case):
    row, ranking, meta, bm25, dense = case
    got = classify(row, ranking, meta, bm25=bm25, dense=dense)
    k, gold = row["k"], set(row["gold_docs"])
    top = ranking[:k]
    if got is None:
        assert gold <= set(top) and row.get("span_level_ok", True) is not False
        return
    verdict, text = got
    assert verdict in dict(LADDER)
    for d, r, kk in re.findall(r"gold document (\w+) is at rank (\d+) of the top (\d+)", text):
        assert d in gold and rank_of(d, ranking) == int(r) <= int(kk) == k
    m = re.search(r"found (\d+) of (\d+) gold documents in the top (\d+)", text)
    if m:
        assert (int(m[1]), int(m[2]), int(m[3])) == (len(gold & set(top)), len(gold), k)
    m = re.search(r"missed (\w+).*\(this run: (?:#(\d+)|not retrieved)\): BM25 ranks it #(\d+), in the top (\d+); dense "
                  r"(?:#(\d+)|not in its top (\d+))", text)
    if m:
        d = m[1]
        assert d in gold - set(top)
        assert rank_of(d, ranking) == (int(m[2]) if m[2] else None)
        assert rank_of(d, bm25) == int(m[3]) <= k == int(m[4])
        assert rank_of(d, dense) == (int(m[5]) if m[5] else None)
        assert m[5] is None or int(m[5]) > k  # dense does not have it in the top k
    for d, r in re.findall(r"(\w+) \((?:rank (\d+)|not retrieved)\)", text.split("missing from the top")[-1]) \
            if "gold document(s) missing" in text else []:
        assert d in gold - set(top) and rank_of(d, ranking) == (int(r) if r else None)
    m = re.search(r"superseded (\w+) at rank (\d+); its current version (\w+) is (?:rank (\d+)|not retrieved)", text)
    if m:
        assert meta[m[1]]["superseded_by"] == m[3] and rank_of(m[1], ranking) == int(m[2]) <= k
        assert rank_of(m[3], ranking) == (int(m[4]) if m[4] else None)
        assert m[4] is None or int(m[4]) > int(m[2])
    m = re.search(r"the chunk holding (?:its|(\w+)'s) evidence \[10:40\] is (?:at chunk rank (\d+)|not among)", text)
    if m:
        spans = [s for s in row["spans"] if not s["in_context"] and not s["split"]]
        assert any(s["chunk_rank"] == (int(m[2]) if m[2] else None) for s in spans)
        if verdict == "wrong_passage":
            assert m[2] is None or int(m[2]) > k
    m = re.search(r"the 512-token context budget holds the top (\d+) chunks", text)
    if m:
        assert int(m[1]) == row["context_chunks"]


# ------------------------------------------------------------------------------------------ traces' fixes
class View:
    """A CorpusView stand-in whose companion rankings the test chooses."""

    def __init__(self, docs, ranks, whole):
        self.docs = {d: Document(d, "", f"text of {d}") for d in docs}
        self.ranks, self.whole = ranks, whole

    def doc_of(self, ctx, matcher):
        return ctx.get("doc_id")

    def rank(self, name, tid, doc):
        return self.ranks.get(name)

    def whole_in_section_chunk(self, piece, doc, matcher):
        return self.whole


@settings(max_examples=300, deadline=None)
@given(verdict=st.sampled_from(["stale_version", "chunk_boundary", "wrong_passage", "exact_term", "multi_hop", "other"]),
       here=st.one_of(st.none(), st.integers(1, 5)), k=st.integers(1, 10), whole=st.booleans(),
       ranks=st.fixed_dictionaries({n: st.one_of(st.none(), st.integers(1, 20)) for n in ("bm25", "dense", "versions=filter")}))
def test_a_trace_fix_is_offered_only_when_its_companion_ranks_the_evidence_higher(verdict, here, k, whole, ranks):
    from benchmarks.diagnosis.records import Trace

    contexts = [{"id": f"c{i}", "text": "x", "doc_id": "gold" if here == i + 1 else f"other{i}"} for i in range(5)]
    trace = Trace(1, "t1", "q", contexts, ["the reference"])
    text = suggest_fix(verdict, trace, ["the reference"], {"the reference": ["gold"]}, View(["gold"], ranks, whole), None, k)
    shown_here = re.search(r"here (?:#(\d+)|not among|no context holds)", text)
    passage_level = verdict in ("chunk_boundary", "wrong_passage")
    assert shown_here and (int(shown_here[1]) if shown_here[1] else None) == (None if passage_level else here)
    for name, r in ranks.items():
        assert (f"{name} #{r}" if r else f"{name} not in the top 100") in text
    offer = re.search(r"try (.+) \((\S+) ranks it #(\d+)\)", text)
    if offer:
        name, r = offer[2], int(offer[3])
        assert ranks[name] == r <= k and (here is None or passage_level or r < here)
        assert verdict != "multi_hop"
        if offer[1] == "chunker=sections":
            assert whole
    else:
        assert "no companion run" in text


def test_wrong_passage_and_chunk_boundary_are_told_apart_on_a_trace():
    """Right document, wrong passage: a passage of the document that holds the reference, which neither holds nor
    overlaps it, is wrong_passage (it was 'the reference is in X.md, which no passage comes from'); a passage that
    ends with the reference's first words is chunk_boundary."""
    from benchmarks.diagnosis.companions import CorpusView
    from benchmarks.diagnosis.matching import Matcher
    from benchmarks.diagnosis.records import Trace
    from benchmarks.diagnosis.traces import judge

    text = ("# Leave\n\nRequests go through the portal and need a manager's approval first.\n\n"
            "## Carry-over\n\nUnused leave days expire on 31 March of the following calendar year unless agreed.\n")
    doc = Document("leave.md", "Leave", text)
    view = CorpusView({"leave.md": doc}, {"bm25": {"t": ["leave.md"]}, "dense": {"t": []}, "versions=filter": {"t": []}},
                      {"leave.md": [Chunk("leave.md#0", "leave.md", "Leave", text, 0, len(text))]})
    reference = "Unused leave days expire on 31 March of the following calendar year"
    wrong = Trace(1, "t", "When does leave expire?", [{"id": "c1", "text": "Requests go through the portal and need a "
                                                       "manager's approval first.", "doc_id": "leave.md", "score": 1.0, "rank": 1}],
                  [reference])
    row = judge(wrong, Matcher(), view, 5)
    assert row["verdict"] == "wrong_passage" and "context #1 is from leave.md, which holds the reference at [" in row["evidence"]
    # no context holds the evidence whole; BM25 over chunker=sections chunks ranks leave.md #1 with a chunk that does
    assert row["trace"]["fix"].startswith("leave.md: here no context holds the evidence whole; bm25 #1")
    assert row["trace"]["fix"].endswith("try chunker=sections (bm25 ranks it #1)")
    cut = Trace(2, "t", "When does leave expire?", [{"id": "c2", "text": "Carry-over. Unused leave days expire on 31 March",
                                                     "doc_id": "leave.md", "score": 1.0, "rank": 1}], [reference])
    row = judge(cut, Matcher(), view, 5)
    assert row["verdict"] == "chunk_boundary" and "ends with the reference's first" in row["evidence"]


@pytest.mark.parametrize("chunk_rank, verdict, says", [
    (None, "wrong_passage", "not among the retrieved chunks"),
    (14, "wrong_passage", "at chunk rank 14, outside the top 10 chunks"),
    (7, "other", "at chunk rank 7; the 512-token context budget holds the top 3 chunks"),
])
def test_a_span_outside_the_context_is_explained_by_where_its_chunk_ranks(chunk_rank, verdict, says):
    """The old audit said 'outside the context budget' even when the chunk was not in the top 10 at all."""
    row = {"query_id": "q", "k": 10, "gold_docs": ["d1"], "budget": 512, "context_chunks": 3, "span_level_ok": False,
           "spans": [{"doc_id": "d1", "start": 5, "end": 50, "split": False, "in_context": False, "chunk_rank": chunk_rank}]}
    got = classify(row, ["d1", "d2"], {})
    assert got[0] == verdict and says in got[1], got
