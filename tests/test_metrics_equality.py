"""The numpy metrics equal ``ranx.evaluate`` to 1e-9 (#14): Hypothesis-generated qrels and runs with ties
(also in rankings longer than numba's insertion-sort threshold, where ranx's quicksort reorders equal scores),
graded and zero relevance, empty runs, unjudged queries and ids of many lengths."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from benchmarks.evaluation.metrics import evaluate

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command

KS = [1, 2, 3, 5, 10, 20]
# ids of several lengths (ranx compiles its kernels again for each new maximum id length: a handful of
# lengths keeps this test fast while still covering short, long and non-ASCII ids)
IDS = ["a", "b", "c", "d0", "d1", "e" * 7, "f" * 7 + "1", "é漢字-" + "x" * 20, "y" * 40, "z" * 40 + "2", "doc 9", "#%\t",
       *(f"p{i:02d}" for i in range(60))]


@st.composite
def case(draw):
    queries = draw(st.lists(st.sampled_from(["q1", "q2", "q3", "q4", "q long id " * 3]), min_size=1, max_size=5, unique=True))
    qrels, run = {}, {}
    for q in queries:
        judged = draw(st.lists(st.sampled_from(IDS), max_size=10, unique=True))
        qrels[q] = {d: draw(st.integers(0, 3)) for d in judged}
        if draw(st.booleans()) or not judged:  # some queries have no run at all
            retrieved = draw(st.lists(st.sampled_from(IDS), max_size=draw(st.sampled_from([5, 14, 40, 70])), unique=True))
            run[q] = {d: float(draw(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.5, -1.0]))) for d in retrieved}  # ties
    if draw(st.booleans()):
        run["unjudged"] = {"a": 1.0}
    return qrels, run


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_numpy_metrics_equal_ranx(data):
    qrels, run = data
    ours, ref = evaluate(qrels, run, KS), evaluate(qrels, run, KS, engine="ranx")
    assert ours.n_scored == ref.n_scored and ours.skipped == ref.skipped
    assert set(ours.per_query) == set(ref.per_query)
    for qid, row in ref.per_query.items():
        for name, value in row.items():
            assert ours.per_query[qid][name] == pytest.approx(value, abs=1e-9), (qid, name)
    for name, value in ref.mean.items():
        assert ours.mean[name] == pytest.approx(value, abs=1e-9), name


def test_by_hand():
    # relevant: a (2), b (1); ranking c, a, b
    ev = evaluate({"q": {"a": 2, "b": 1, "z": 0}}, {"q": {"c": 3.0, "a": 2.0, "b": 1.0}}, [1, 2, 3])
    import math

    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    row = ev.per_query["q"]
    assert row["ndcg_at_3"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert row["ndcg_at_1"] == 0.0 and row["recall_at_2"] == 0.5 and row["mrr_at_3"] == 0.5
    assert row["map_at_3"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
    assert row["evidence_coverage_at_2"] == 0.0 and row["evidence_coverage_at_3"] == 1.0


def test_tie_order_follows_ranx_quicksort_not_insertion():
    """20 documents with one score (past numba's insertion-sort threshold of 15): ranx's quicksort moves
    them; the numpy path reproduces the exact positions, so nDCG equals ranx's."""
    hits = {"top1": 5.0, "top2": 4.0, "top3": 3.0, **{f"d{i:02d}": 1.0 for i in range(20)}}
    from benchmarks.evaluation.metrics import ranx_order

    canonical = sorted(hits, key=lambda d: (hits[d], d), reverse=True)
    order = ranx_order({d: hits[d] for d in canonical})
    assert order[:3] == ["top1", "top2", "top3"] and order != canonical  # equal scores moved
    for gold in ("d00", "d07", "d19"):
        qrels = {"q": {gold: 1}}
        assert evaluate(qrels, {"q": hits}, [10]).mean == pytest.approx(evaluate(qrels, {"q": hits}, [10], engine="ranx").mean, abs=1e-12)
