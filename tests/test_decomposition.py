"""Decomposition (#6): per-question fusion by hand, heuristic rules, iterative (title / links), gold steps
with #k substitution, the wrapper's call counts and records."""

import pytest

from benchmarks.datasets.base import Dataset
from benchmarks.run.retrieval import retrieve
from chunkers import Document, NoChunker, Query
from retrievers.decomposition import (DecomposingRetriever, GoldDecomposer, HeuristicDecomposer, IterativeDecomposer,
                                      NoDecomposer, fuse_rankings)
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
    # bridge: the relative clause with its head noun
    ("What government position was held by the woman who portrayed Corliss Archer?",
     ["the woman who portrayed Corliss Archer"]),
    ("Which city is the band that recorded Black Hole Sun from?", ["the band that recorded Black Hole Sun from"]),
    # not confident: clause too short, or no head noun phrase
    ("Who is the man who won?", []),
    ("Who directed Jaws?", []),
])
def test_heuristic_rules(question, subs):
    assert HeuristicDecomposer().split(question) == subs
    assert HeuristicDecomposer().covered(Query("q", question)) == bool(subs)


def test_heuristic_bridge_can_be_switched_off():
    q = "What government position was held by the woman who portrayed Corliss Archer?"
    assert HeuristicDecomposer(bridge=False).split(q) == []


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
    assert res.ranking.calls_mean() == 3
    assert list(res.run["q"])[0] == "c"  # found by both follow-ups: rank 1 twice beats rank 1 once
    none = DecomposingRetriever(retriever=first, decomposer=NoDecomposer())
    res_none = retrieve(ds, NoChunker(), none, top_k=3)
    assert res_none.run["q"] == {"a": 3, "b": 2, "c": 1}
    assert res_none.ranking.calls_mean() == 1
    assert res_none.ranking.records["q"] == {"query_id": "q", "subqueries": [], "retrieval_calls": 1, "decomposed": False}


class Scripted(FixedRetriever):
    """Doc-level scores per query TEXT; records every text it is asked."""

    def __init__(self, by_text):
        super().__init__({})
        self.by_text, self.seen = by_text, []

    def search(self, queries, *, top_k):
        self.seen.extend(q.text for q in queries)
        return {q.id: {f"{d}#0": s for d, s in self.by_text.get(q.text, {}).items()} for q in queries}


def _links_dataset():
    docs = [
        Document("film", "Kiss and Tell (1945 film)", "Kiss and Tell is a 1945 comedy starring Shirley Temple as Corliss "
                 "Archer, with Walter Abel. Not Templeton Peck."),
        Document("temple", "Shirley Temple", "Shirley Temple was an actress and later a United States ambassador."),
        Document("abel", "Walter Abel", "Walter Abel was an American actor."),
        Document("peck", "Templeton Peck", "A fictional character."),  # mentioned, but ranked low by the question
        Document("other", "Corliss Archer (radio)", "A radio series about a teenage girl."),
        Document("noise", "Noise", "Unrelated."),
    ]
    q = Query("q", "What government position was held by the woman who portrayed Corliss Archer in Kiss and Tell?")
    return Dataset("t", docs, [q], {"q": {"film": 1, "temple": 1}}), q


def test_links_follow_title_mentions_ranked_by_question_score():
    ds, q = _links_dataset()
    # the question ranks the film first and Shirley Temple nowhere; Walter Abel beats Templeton Peck
    base = Scripted({q.text: {"film": 9, "other": 8, "noise": 7, "abel": 2, "peck": 1}})
    dec = IterativeDecomposer(follow="links", m=1, links=2, depth=50)
    r = DecomposingRetriever(retriever=base, decomposer=dec)
    r.index([c for d in ds.corpus for c in NoChunker().chunk(d)])
    # "Corliss Archer (radio)" is mentioned as "Corliss Archer"; whole words only ("Templeton Peck" yes, a
    # bare "Temple" no); the document itself is not its own link
    assert r.links("film") == ["temple", "other", "abel", "peck"]
    ranking = r.rank([q], top_k=6)
    # after the film: its two best-scored links (other 8 > abel 2 > peck 1; temple unscored -> after scored)
    assert list(ranking.run["q"]) == ["film", "other", "abel", "noise", "peck"]
    assert base.seen == [q.text] and ranking.calls_mean() == 1
    dec3 = IterativeDecomposer(follow="links", m=1, links=4, depth=50)
    r3 = DecomposingRetriever(retriever=Scripted({q.text: {"film": 9, "noise": 7}}), decomposer=dec3)
    r3.index([c for d in ds.corpus for c in NoChunker().chunk(d)])
    # unscored links keep mention order, right after the followed document; top_k cuts the list
    assert list(r3.rank([q], top_k=4).run["q"]) == ["film", "temple", "other", "abel"]
    with pytest.raises(ValueError, match="follow must be one of title\\|links"):
        IterativeDecomposer(follow="hyperlinks")


def test_gold_musique_steps_substitute_gold_answers():
    docs = [Document(d, d.title(), f"text {d}") for d in ("a", "b", "c")]
    steps = [{"question": "Who wrote Hamlet?", "answer": "Shakespeare"},
             {"question": "Where was #1 born?", "answer": "Stratford"},
             {"question": "What river flows through #2?", "answer": "Avon"}]
    q = Query("2hop_x", "What river flows through the birthplace of the author of Hamlet?", {"question_decomposition": steps})
    bare = Query("other", "no decomposition here")
    base = Scripted({q.text: {"a": 1}, "Who wrote Hamlet?": {"b": 1}, "Where was Shakespeare born?": {"c": 1},
                     "What river flows through Stratford?": {"c": 2}})
    r = DecomposingRetriever(retriever=base, decomposer=GoldDecomposer())
    ds = Dataset("t", docs, [q, bare], {"2hop_x": {"c": 1}, "other": {"a": 1}})
    res = retrieve(ds, NoChunker(), r, top_k=3)
    assert res.ranking.records["2hop_x"]["subqueries"] == ["Who wrote Hamlet?", "Where was Shakespeare born?",
                                                "What river flows through Stratford?"]
    assert res.ranking.calls == {"2hop_x": 4, "other": 1}  # all gold steps in one round; the bare question alone
    assert list(res.run["2hop_x"])[0] == "c"  # rank 1 in two step lists
    assert res.ranking.records["other"]["decomposed"] is False and res.ranking.stats["decomposed_queries"] == 1


def test_gold_qdmr_steps_resolve_references_by_retrieval_in_order():
    docs = [Document("film", "Kiss and Tell (1945 film)", "x"), Document("temple", "Shirley Temple", "y")]
    q = Query("q", "question?", {"qdmr": ["the woman who portrayed Corliss Archer", "government position held by #1",
                                          "#2 and #1"]})
    base = Scripted({"the woman who portrayed Corliss Archer": {"temple": 5, "film": 1},
                     "government position held by Shirley Temple": {"temple": 3},
                     "question?": {"film": 1}})
    r = DecomposingRetriever(retriever=base, decomposer=GoldDecomposer())
    r.index([c for d in docs for c in NoChunker().chunk(d)])
    ranking = r.rank([q], top_k=2)
    # step 1 alone in round 1; step 2 once step 1's top title is known; step 3 needs step 2: round 3
    assert base.seen == ["question?", "the woman who portrayed Corliss Archer", "government position held by Shirley Temple",
                         "Shirley Temple and Shirley Temple"]
    assert ranking.calls["q"] == 4
