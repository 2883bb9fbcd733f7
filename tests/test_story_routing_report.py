"""#7: the routing report's done-criterion logic, and the story's per-label table computed by hand."""

from collections import Counter

from benchmarks.datasets.base import Dataset
from benchmarks.evaluation.metrics import Evaluation
from benchmarks.studies.routing import criterion
from benchmarks.story import per_label, table
from chunkers import Document, Query


def row(strategy, ndcg, cov, calls):
    return {"dataset": "d", "strategy": strategy, "ndcg_at_10": ndcg, "evidence_coverage_at_10": cov,
            "retrieval_calls_mean": calls}


def test_criterion_pass_and_fail():
    ok = [row("router", 0.975, 0.99, 1.4), row("simple", 0.90, 0.80, 1.0), row("multi_hop", 0.984, 1.0, 2.0)]
    assert criterion(ok).count("PASS") == 1
    worse = [row("router", 0.970, 0.99, 1.4), row("multi_hop", 0.984, 1.0, 2.0)]  # 0.014 behind on nDCG
    assert "FAIL" in criterion(worse)
    costlier = [row("router", 0.984, 1.0, 2.0), row("multi_hop", 0.984, 1.0, 2.0)]  # not cheaper
    assert "FAIL" in criterion(costlier)


def test_story_per_label_by_hand():
    from benchmarks.run.runner import RunResult

    docs = [Document("v1", "", "", {"superseded_by": "v2"}), Document("v2", "", ""), Document("x", "", "")]
    qs = [Query("s1", "a", {"label": "stale_version", "stale_doc_ids": ["v1"], "current_doc_id": "v2"}),
          Query("s2", "b", {"label": "stale_version", "stale_doc_ids": ["v1"], "current_doc_id": "v2"}),
          Query("c1", "c", {"label": "chunk_boundary"})]
    ds = Dataset("t", docs, qs, {"s1": {"v2": 1}, "s2": {"v2": 1}, "c1": {"x": 1}})
    per_q = {"s1": {"ndcg_at_10": 0.5, "evidence_coverage_at_10": 1.0}, "s2": {"ndcg_at_10": 1.0, "evidence_coverage_at_10": 1.0},
             "c1": {"ndcg_at_10": 1.0, "evidence_coverage_at_10": 1.0}}
    result = RunResult("r1", {}, dataset=ds, evaluation=Evaluation(mean={}, per_query=per_q, n_scored=3, n_skipped=0),
                       audit_rows=[{"query_id": "c1", "span_level_ok": False}],
                       run={"s1": {"v1": 2.0, "v2": 1.0}, "s2": {"v2": 2.0, "v1": 1.0}, "c1": {"x": 1.0}})
    got = per_label(result)
    assert got["stale_version"]["n"] == 2 and got["stale_version"]["ndcg_at_10"] == 0.75
    assert got["stale_version"]["stale_hit_rate"] == 0.5  # s1: the old version first
    assert got["chunk_boundary"]["span_recall_at_budget"] == 0.0
    text = table(got, got, {"stale_version": Counter({"stale_version": 1})})
    assert "stale 0.50 -> 0.50" in text and "stale_version 1" in text and "span 0.00 -> 0.00" in text
