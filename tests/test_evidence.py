"""Evidence-level metrics by hand."""

import pytest

from benchmarks.evaluation.evidence import chunk_stats, evidence_metrics
from chunkers import Chunk, Query
from chunkers.tokens import TokenCounter

W = TokenCounter("whitespace")
TEXT = "aa bb cc dd ee ff gg hh"  # offsets: aa 0-2, bb 3-5, cc 6-8, dd 9-11, ee 12-14, ff 15-17, gg 18-20, hh 21-23


def ch(n, s, e, context=""):
    return Chunk(f"d#{n}", "d", "", TEXT[s:e], s, e, context)


CHUNKS = [ch(0, 0, 8), ch(1, 9, 17, "x y"), ch(2, 18, 23)]  # "aa bb cc" | "dd ee ff" (+2 context) | "gg hh"
Q1 = Query("q1", "", {"evidence": [{"doc_id": "d", "start": 3, "end": 8}]})              # bb cc: inside chunk 0
Q2 = Query("q2", "", {"evidence": [{"doc_id": "d", "start": 6, "end": 11}]})             # cc dd: split 0|1
Q3 = Query("q3", "", {"evidence": [{"doc_id": "d", "start": 12, "end": 14},              # ee in chunk 1
                                   {"doc_id": "d", "start": 21, "end": 23}]})            # hh in chunk 2
NOSPANS = Query("q4", "")


def test_split_rate_and_span_recall_by_hand():
    run = {"q1": {"d#1": 3.0, "d#0": 2.0}, "q2": {"d#0": 1.0, "d#1": 0.5}, "q3": {"d#1": 2.0, "d#2": 1.0}}
    m = evidence_metrics(CHUNKS, [Q1, Q2, Q3, NOSPANS], run, ks=[1, 2], budget=5, counter=W)
    assert m["evidence_split_rate"] == pytest.approx(1 / 4)  # 4 spans, cc-dd is split
    assert m["span_recall_at_1"] == pytest.approx(0.0)        # q1's top-1 is chunk 1; q3 needs two chunks
    assert m["span_recall_at_2"] == pytest.approx(2 / 3)      # q1 and q3; q2 never (split)
    # budget 5 tokens: chunk 1 costs 3 + 2 (context) = 5, so q1 (needs chunk 0 second) fails, q3 gets only chunk 1
    assert m["span_recall_at_budget"] == pytest.approx(0.0)
    m = evidence_metrics(CHUNKS, [Q1, Q2, Q3], run, ks=[2], budget=8, counter=W)
    assert m["span_recall_at_budget"] == pytest.approx(2 / 3)  # 5 + 3 = 8 fits both chunks


def test_no_gold_spans_no_metrics():
    assert evidence_metrics(CHUNKS, [NOSPANS], {}, ks=[1]) == {}


def test_chunk_stats():
    s = chunk_stats(CHUNKS, counter=W)
    assert s == {"chunk_count": 3, "chunk_tokens_mean": pytest.approx(8 / 3), "chunk_tokens_max": 3}
