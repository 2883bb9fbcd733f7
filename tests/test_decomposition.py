"""Decomposition groundwork (#6): per-question fusion by hand, heuristic rules, the wrapper's calls."""

import pytest

from benchmarks.datasets.base import Dataset
from benchmarks.runner import retrieve
from chunkers import Document, NoChunker, Query
from retrievers.decomposition import (DecomposingRetriever, HeuristicDecomposer, IterativeDecomposer, NoDecomposer,
                                      fuse_rankings)
from fakes import FixedRetriever


def test_fuse_rankings_by_hand():
    a, b = {"x": 3.0, "y": 2.0}, {"y": 5.0, "z": 1.0}
    rrf = fuse_rankings([a, b], method="rrf", rrf_k=60)
    assert rrf == {"y": pytest.approx(1 / 62 + 1 / 61), "x": pytest.approx(1 / 61), "z": pytest.approx(1 / 62)}
    assert list(rrf) == ["y", "x", "z"]
    assert fuse_rankings([a, b], method="max") == {"y": 5.0, "x": 3.0, "z": 1.0}
    assert fuse_rankings([a, b], method="sum") == {"y": 7.0, "x": 3.0, "z": 1.0}
    with pytest.raises(ValueError, match="rrf\\|max\\|sum"):
        fuse_rankings([a], method="mean")


@pytest.mark.parametrize("question,subs", [
    ("Who is older, Annie Morton or Terry Richardson?", ["Annie Morton", "Terry Richardson"]),
    ("Which is older, X-200 or X-300?", ["X-200", "X-300"]),
    ("Are Local H and For Against both from the United States?", ["Local H", "For Against"]),
    ("Are Random House Tower and 888 7th Avenue both used for real estate?", ["Random House Tower", "888 7th Avenue"]),
    ("What government position was held by the woman who portrayed Corliss Archer?", []),
])
def test_heuristic_rules(question, subs):
    assert HeuristicDecomposer().subqueries(Query("q", question), 1, [], {}) == subs


def test_iterative_follow_ups_and_call_counts():
    docs = [Document(d, f"Title {d}", f"Text of {d}. Second sentence.") for d in ("a", "b", "c")]
    first = FixedRetriever({"q": {"a": 3, "b": 2, "c": 1}})
    ds = Dataset("t", docs, [Query("q", "question")], {"q": {"c": 1}})
    seen = []

    class Recording(FixedRetriever):
        def search(self, queries, *, top_k):
            seen.extend(q.text for q in queries)
            return {q.id: ({"a#0": 3, "b#0": 2, "c#0": 1} if q.id == "q" else {"c#0": 9}) for q in queries}

    r = DecomposingRetriever(retriever=Recording({}), decomposer=IterativeDecomposer(hops=2, m=2, first_sentence=True))
    res = retrieve(ds, NoChunker(), r, top_k=3)
    assert seen == ["question", "question Title a Text of a.", "question Title b Text of b."]
    assert r.stats()["retrieval_calls_mean"] == 3
    assert list(res.run["q"])[0] == "c"  # found by both follow-ups: rank 1 twice beats rank 1 once
    none = DecomposingRetriever(retriever=first, decomposer=NoDecomposer())
    assert retrieve(ds, NoChunker(), none, top_k=3).run["q"] == {"a": 3, "b": 2, "c": 1}
    assert none.stats()["retrieval_calls_mean"] == 1
