"""Fusion by hand (wsum + min-max, RRF), independence from run order, and the hybrid retriever."""

import pytest
from hypothesis import given, settings, strategies as st

from retrievers.base import canonical_run
from retrievers.fusion import fuse, ranx_fuse_runs

A = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
B = {"q": {"d3": 10.0, "d4": 5.0, "d1": 0.0}}


def test_wsum_min_max_by_hand():
    out = fuse([A, B], method="wsum", norm="min-max", weights=[0.25, 0.75])["q"]
    # A normalised: d1 1, d2 .5, d3 0; B normalised: d3 1, d4 .5, d1 0
    assert out["d1"] == pytest.approx(0.25)
    assert out["d2"] == pytest.approx(0.125)
    assert out["d3"] == pytest.approx(0.75)
    assert out["d4"] == pytest.approx(0.375)
    assert list(out) == ["d3", "d4", "d1", "d2"]


def test_weight_extremes_reproduce_single_run_order():
    only_a = fuse([A, B], method="wsum", weights=[1.0, 0.0])["q"]
    assert list(only_a)[:2] == ["d1", "d2"] and only_a["d3"] == only_a["d4"] == 0.0
    only_b = fuse([A, B], method="wsum", weights=[0.0, 1.0])["q"]
    assert list(only_b)[:2] == ["d3", "d4"]


def test_rrf_by_hand():
    out = fuse([A, B], method="rrf", rrf_k=60)["q"]
    assert out["d1"] == pytest.approx(1 / 61 + 1 / 63)
    assert out["d3"] == pytest.approx(1 / 63 + 1 / 61)
    assert out["d2"] == pytest.approx(1 / 62)
    assert out["d4"] == pytest.approx(1 / 62)


def test_queries_answered_by_one_run_or_none():
    a = {"q1": {"x": 2.0, "y": 1.0}, "q2": {}, "q3": {}}
    b = {"q1": {"x": 1.0}, "q2": {"z": 4.0, "w": 2.0}, "q3": {}}
    out = fuse([a, b], method="wsum", weights=[0.5, 0.5])
    assert out["q3"] == {}
    assert out["q2"] == {"z": pytest.approx(0.5), "w": pytest.approx(0.0)}
    assert list(out) == ["q1", "q2", "q3"]
    assert a == {"q1": {"x": 2.0, "y": 1.0}, "q2": {}, "q3": {}}  # inputs untouched


def test_bad_weights():
    with pytest.raises(ValueError, match="one weight per base retriever"):
        fuse([A, B], weights=[1.0])


runs = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), st.floats(0.1, 10, allow_nan=False), min_size=1)


@settings(max_examples=40, deadline=None)
@given(runs, runs, runs)
def test_rrf_independent_of_run_order(r1, r2, r3):
    x = fuse([{"q": r1}, {"q": r2}, {"q": r3}], method="rrf")
    y = fuse([{"q": r3}, {"q": r1}, {"q": r2}], method="rrf")
    assert x["q"].keys() == y["q"].keys()
    for d in x["q"]:
        assert x["q"][d] == pytest.approx(y["q"][d])


scored = st.dictionaries(st.sampled_from([f"d{i}" for i in range(8)]),
                         st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.25, 7.0]), min_size=1, max_size=8)
multi = st.dictionaries(st.sampled_from(["q1", "q2", "q3"]), scored, min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(multi, multi, st.floats(0, 1), st.sampled_from([1, 10, 60]))
def test_fast_path_equals_ranx(a, b, w, k):
    # runs inside the project are in canonical order (ties by id descending); ranx ranks ties by insertion
    qids = sorted(set(a) | set(b))
    a = canonical_run({q: a.get(q, {}) for q in qids})
    b = canonical_run({q: b.get(q, {}) for q in qids})
    for method, kw in (("wsum", {"weights": [w, 1 - w]}), ("rrf", {"rrf_k": k})):
        fast = fuse([a, b], method=method, norm="min-max", **kw)
        ref = ranx_fuse_runs([a, b], method=method, norm="min-max", **kw)
        assert fast.keys() == ref.keys()
        for q in fast:
            assert fast[q].keys() == ref[q].keys()
            for d in fast[q]:
                assert fast[q][d] == pytest.approx(ref[q][d], abs=1e-9), (method, q, d)
