"""#7: routing rules, the routing retriever's dispatch and costs, version filter/decay, stale_hit_rate by hand."""

import datetime

import pytest

from benchmarks.evaluation.metrics import stale_hit, stale_hit_rate, stale_sets
from chunkers import Document, NoChunker, Query
from retrievers.routing import QueryRouter, RoutingRetriever
from retrievers.stage import DocumentRanker
from retrievers.types import Ranking
from retrievers.versions import VersionAwareRetriever
from test_decomposition import Scripted


@pytest.mark.parametrize("text,route,reason", [
    ("Which budget code is used by the team that owns the Information Security policy?", "multi_hop", "relative_clause"),
    ("Who manages the team that owns the PX-100 filter replacement procedure?", "multi_hop", "relative_clause"),
    ("Who is older, Annie Morton or Terry Richardson?", "multi_hop", "comparison"),
    ("Are Local H and For Against both from the United States?", "multi_hop", "comparison"),
    ("What torque should the filter housing bolts be tightened to on the PX-200?", "exact_term", "identifier"),
    ("What does section 4.2 say about leave?", "exact_term", "section_number"),
    ('Who wrote "The Raven"?', "exact_term", "quoted_name"),
    ("How quickly is a request about the badge handled?", "simple", None),
    ("Under the Conflict of Interest policy: who approves a family employment disclosure costing more than the threshold?",
     "simple", None),
])
def test_routing_rules(text, route, reason):
    got, reasons = QueryRouter().route(text)
    assert got == route
    assert (reason in reasons) if reason else reasons == []


def test_rules_can_be_switched_off_and_forced():
    q = "Who manages the team that owns the PX-100 filter replacement procedure?"
    assert QueryRouter(relative_clause=False).route(q)[0] == "exact_term"
    assert QueryRouter(relative_clause=False, identifier=False).route(q)[0] == "simple"
    assert QueryRouter(force="multi_hop").route("How quickly?") == ("multi_hop", ["forced"])
    long_q = "What did the author of the novel write and when did the film adaptation of it premiere in cinemas?"
    assert QueryRouter(relative_clause=False, long_query_words=12).route(long_q)[0] == "multi_hop"
    with pytest.raises(ValueError, match="router.rules.force must be one of simple\\|exact_term\\|multi_hop"):
        QueryRouter(force="dense")


class TwoBase:
    """A stage that costs two base searches per query (stands for a hybrid)."""

    def __init__(self, by_text):
        self.inner = DocumentRanker(Scripted(by_text))
        self.seen = self.inner.retriever.seen

    def index(self, chunks):
        self.inner.index(chunks)

    def rank(self, queries, *, top_k):
        r = self.inner.rank(queries, top_k=top_k)
        return Ranking(r.run, r.chunk_lists, None, {}, {q: 2.0 for q in r.calls}, r.stats)


def test_routing_retriever_dispatches_logs_routes_and_costs():
    docs = [Document(d, d.upper(), f"text {d}") for d in ("a", "b", "c")]
    simple = Scripted({"how are you": {"a": 1}})
    exact = TwoBase({"error E-4417 meaning": {"b": 1}})
    r = RoutingRetriever(rules=QueryRouter(), routes={"simple": {"retriever": simple}, "exact_term": {"retriever": exact}})
    r.index([c for d in docs for c in NoChunker().chunk(d)])
    qs = [Query("q1", "how are you"), Query("q2", "error E-4417 meaning"), Query("q3", "the team that owns the big house?")]
    ranking = r.rank(qs, top_k=3)
    run = ranking.run
    assert simple.seen == ["how are you", "the team that owns the big house?"]  # multi_hop has no route: default
    assert exact.seen == ["error E-4417 meaning"]
    assert run == {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {}}
    assert [ranking.records[q]["route"] for q in ("q1", "q2", "q3")] == ["simple", "exact_term", "simple"]
    assert ranking.calls_mean() == pytest.approx((1 + 2 + 1) / 3)
    assert [ranking.records[q]["retrieval_calls"] for q in ("q1", "q2", "q3")] == [1, 2, 1]
    assert ranking.stats["route_share_exact_term"] == pytest.approx(1 / 3)
    assert ranking.chunk_lists["q2"] == [{"b#0": 1}]
    with pytest.raises(ValueError, match="unknown route"):
        RoutingRetriever(rules=QueryRouter(), routes={"fast": {"retriever": simple}})


def _versions_corpus():
    return [
        Document("pol-v1", "Leave policy", "old text", {"superseded_by": "pol-v2", "effective_date": "2020-01-01"}),
        Document("pol-v2", "Leave policy", "new text", {"supersedes": "pol-v1", "effective_date": "2024-01-01"}),
        Document("kb", "Old KB", "kb text", {"deprecated": True, "effective_date": "2022-01-01"}),
        Document("other", "Other", "x", {"effective_date": "2024-01-01"}),
    ]


def test_filter_drops_superseded_and_deprecated_at_index_time():
    inner = Scripted({})
    indexed = []
    inner.index = lambda chunks: indexed.extend(c.doc_id for c in chunks)
    r = VersionAwareRetriever(retriever=inner, mode="filter")
    r.index([c for d in _versions_corpus() for c in NoChunker().chunk(d)])
    assert indexed == ["pol-v2", "other"] and r.rank([], top_k=1).stats["versions_filtered_docs"] == 2


def test_decay_reorders_by_hand():
    inner = Scripted({"leave": {"pol-v1": 10.0, "pol-v2": 8.0, "kb": 9.0, "other": 0.0}})
    r = VersionAwareRetriever(retriever=inner, mode="decay", superseded_factor=0.5, deprecated_factor=0.25)
    r.index([c for d in _versions_corpus() for c in NoChunker().chunk(d)])
    run = r.rank([Query("q", "leave")], top_k=4).run["q"]
    # min-max: v1 1.0, kb 0.9, v2 0.8, other 0; x factors: v1 0.5, kb 0.225, v2 0.8
    assert run == {"pol-v2": pytest.approx(0.8), "pol-v1": pytest.approx(0.5), "kb": pytest.approx(0.225),
                   "other": 0.0}
    assert list(run) == ["pol-v2", "pol-v1", "kb", "other"]
    aged = VersionAwareRetriever(retriever=inner, mode="decay", superseded_factor=1, deprecated_factor=1, half_life_days=365)
    aged.index([c for d in _versions_corpus() for c in NoChunker().chunk(d)])
    age_v1 = (datetime.date(2024, 1, 1) - datetime.date(2020, 1, 1)).days
    assert aged.rank([Query("q", "leave")], top_k=4).run["q"]["pol-v1"] == pytest.approx(0.5 ** (age_v1 / 365))
    with pytest.raises(ValueError, match="versions.mode must be one of ignore\\|filter\\|decay"):
        VersionAwareRetriever(retriever=inner, mode="newest")


def test_stale_hit_by_hand():
    stale, cur = {"v1"}, {"v2"}
    assert stale_hit(["v1", "v2"], stale, cur) is True          # stale ranks above current
    assert stale_hit(["v2", "v1"], stale, cur) is False         # current first
    assert stale_hit(["x"] * 3 + ["v1"], stale, cur, k=10) is True   # stale in top k, current absent
    assert stale_hit(["x"] * 12 + ["v1"], stale, cur, k=10) is False  # stale beyond k, current absent
    assert stale_hit(["x", "y"], stale, cur) is False            # neither retrieved
    queries = [Query("q1", "a", {"stale_doc_ids": ["v1"], "current_doc_id": "v2"}), Query("q2", "b"), Query("q3", "c")]
    corpus = [Document("v1", "", "", {"superseded_by": "v2"}), Document("v2", "", "", {"superseded_by": "v3"}),
              Document("v3", "", ""), Document("z", "", "")]
    sets = stale_sets(queries, {"q2": {"v3": 1}, "q3": {"z": 1}}, corpus)
    assert sets == {"q1": ({"v1"}, {"v2"}), "q2": ({"v1", "v2"}, {"v3"})}  # q2 derived from the supersedes chain
    run = {"q1": {"v1": 2.0, "v2": 1.0}, "q2": {"v3": 3.0, "v2": 1.0}}
    assert stale_hit_rate(sets, run) == 0.5


def test_config_wiring_of_router_and_versions():
    from retrievers.bm25 import BM25Retriever
    from retrievers.infrastructure.errors import RetrieverError
    from retrievers.pipeline import build_pipeline
    from test_config import compose_cfg

    wrapped = build_pipeline(compose_cfg(["versions=decay", "versions.superseded_factor=0.3"]))
    assert isinstance(wrapped, VersionAwareRetriever) and isinstance(wrapped.inner, DocumentRanker)
    assert isinstance(wrapped.inner.retriever, BM25Retriever)
    assert wrapped.mode == "decay" and wrapped.superseded_factor == 0.3
    plain = build_pipeline(compose_cfg(["versions=ignore"]))
    assert isinstance(plain, DocumentRanker) and isinstance(plain.retriever, BM25Retriever)
    routed = build_pipeline(compose_cfg(["router=rules"]))
    assert isinstance(routed, RoutingRetriever) and set(routed.routes) == {"simple", "exact_term", "multi_hop"}
    assert type(routed.routes["multi_hop"]).__name__ == "DecomposingRetriever"
    assert routed.routes["exact_term"].weights == [0.7, 0.3]
    with pytest.raises(RetrieverError, match="decomposition is set per route"):
        build_pipeline(compose_cfg(["router=rules", "decomposer=heuristic"]))
