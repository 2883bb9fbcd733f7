"""Metrics against values computed by hand."""

import math

import pytest

from benchmarks.evaluation.metrics import evaluate, metric_names
from retrievers.base import aggregate_to_docs, canonical_run


def test_hand_computed_ndcg_recall_mrr_map():
    qrels = {"q": {"a": 2, "b": 1, "z": 0}}
    run = {"q": {"x": 3.0, "a": 2.0, "y": 1.5, "b": 1.0}}
    ev = evaluate(qrels, run, [1, 2, 4])
    # ranks: x(0) a(2) y(0) b(1); ideal: a(2) b(1)
    dcg4 = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ev.mean["ndcg_at_4"] == pytest.approx(dcg4 / idcg)
    assert ev.mean["ndcg_at_1"] == 0.0
    assert ev.mean["ndcg_at_2"] == pytest.approx((2 / math.log2(3)) / idcg)
    assert ev.mean["recall_at_2"] == pytest.approx(0.5)
    assert ev.mean["recall_at_4"] == 1.0
    assert ev.mean["mrr_at_4"] == pytest.approx(0.5)
    assert ev.mean["mrr_at_1"] == 0.0
    assert ev.mean["map_at_4"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert ev.mean["evidence_coverage_at_2"] == 0.0
    assert ev.mean["evidence_coverage_at_4"] == 1.0


def test_coverage_edge_cases():
    qrels = {"one": {"a": 1}, "absent": {"m": 1, "n": 1}, "partial": {"p": 1, "r": 1}}
    run = {"one": {"a": 1.0}, "absent": {"x": 1.0}, "partial": {"p": 2.0, "x": 1.0, "r": 0.5}}
    ev = evaluate(qrels, run, [1, 2, 3])
    assert ev.per_query["one"]["evidence_coverage_at_1"] == 1.0
    assert ev.per_query["absent"]["evidence_coverage_at_3"] == 0.0
    assert ev.per_query["partial"]["evidence_coverage_at_2"] == 0.0
    assert ev.per_query["partial"]["evidence_coverage_at_3"] == 1.0
    assert ev.mean["evidence_coverage_at_3"] == pytest.approx(2 / 3)


def test_ties_are_broken_like_trec_eval():
    # trec_eval orders equal scores by doc id descending: c, b, a
    qrels = {"q": {"c": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "c": 1.0}}
    assert evaluate(qrels, run, [1]).mean["evidence_coverage_at_1"] == 1.0
    assert evaluate({"q": {"a": 1}}, run, [1]).mean["ndcg_at_1"] == 0.0
    assert list(canonical_run(run)["q"]) == ["c", "b", "a"]


def test_unjudged_queries_are_skipped_and_missing_runs_score_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}, "q3": {"c": 1}}
    run = {"q1": {"a": 1.0}, "q2": {"b": 1.0}}
    ev = evaluate(qrels, run, [10])
    assert ev.n_scored == 2 and ev.n_skipped == 1 and ev.skipped == ["q2"]
    assert ev.per_query["q3"]["ndcg_at_10"] == 0.0
    assert ev.mean["ndcg_at_10"] == pytest.approx(0.5)
    assert set(ev.mean) == set(metric_names([10]))


def test_inputs_not_mutated():
    qrels = {"q": {"a": 1, "z": 0}}
    run = {"q": {"b": 2.0, "a": 1.0}, "extra": {"a": 1.0}}
    before = (repr(qrels), repr(run))
    evaluate(qrels, run, [1, 5])
    assert (repr(qrels), repr(run)) == before


def test_aggregate_to_docs_by_hand():
    run = {"q": {"d1#0": 1.0, "d1#2": 3.0, "d2#1": 2.0, "d2#0": 0.5}}
    c2d = {"d1#0": "d1", "d1#2": "d1", "d2#1": "d2", "d2#0": "d2"}
    assert aggregate_to_docs(run, c2d, mode="max") == {"q": {"d1": 3.0, "d2": 2.0}}
    assert aggregate_to_docs(run, c2d, mode="sum") == {"q": {"d1": 4.0, "d2": 2.5}}
    assert aggregate_to_docs(run, c2d, mode="first") == {"q": {"d1": 1.0, "d2": 0.5}}
    assert list(aggregate_to_docs(run, c2d, mode="first")["q"]) == ["d1", "d2"]
    assert aggregate_to_docs(run, c2d, mode="max", top_k=1) == {"q": {"d1": 3.0}}
    with pytest.raises(ValueError, match="max\\|sum\\|first"):
        aggregate_to_docs(run, c2d, mode="mean")
