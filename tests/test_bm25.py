"""Both BM25 backends: same tokens, same rankings as the reference, sane edge cases."""

import numpy as np
import pytest

from chunkers import Document, NoChunker, Query
from retrievers.base import canonical_run
from retrievers.bm25 import BM25Retriever
from retrievers.text import Tokenizer

DOCS = [
    Document("a", "Cats", "The cat sat on the mat. Cats like warm mats."),
    Document("b", "Dogs", "Dogs chase cats in the garden and bark loudly."),
    Document("c", "Birds", "Birds sing in the garden every morning."),
    Document("d", "Mats", "A mat is a flat piece of material on the floor."),
    Document("e", "Empty", ""),
    Document("f", "Engines", "The X-300 engine needs 25 Nm torque; the X-200 needs 20 Nm."),
]
QUERIES = [Query("1", "cat on a mat"), Query("2", "garden birds singing"), Query("3", "X-300 torque"),
           Query("4", "zzzz qqqq"), Query("5", "the and of")]


def chunks():
    ch = NoChunker()
    return [c for d in DOCS for c in ch.chunk(d)]


def test_tokenizer_stems_and_drops_stopwords():
    tok = Tokenizer(stemmer="english", stopwords="en")
    assert tok("The Cats are running") == ["cat", "run"]
    assert Tokenizer(stemmer=None, stopwords=None)("The Cats") == ["the", "cats"]
    with pytest.raises(ValueError, match="Snowball"):
        Tokenizer(stemmer="klingon")


@pytest.mark.parametrize("variant", ["robertson", "bm25l", "bm25+"])
def test_backends_agree(variant):
    runs = {}
    for backend in ("bm25s", "rank_bm25"):
        r = BM25Retriever(backend=backend, variant=variant, k1=1.2, b=0.75)
        r.index(chunks())
        runs[backend] = canonical_run(r.search(QUERIES, top_k=6))
    for qid in ("1", "2", "3"):
        fast, ref = runs["bm25s"][qid], runs["rank_bm25"][qid]
        if variant == "bm25l":  # the two libraries score non-matching documents differently
            assert list(fast)[0] == list(ref)[0], qid
        else:  # robertson (scores differ by a constant factor (k1 + 1)) and bm25+: identical rankings
            assert list(fast) == list(ref), qid
    assert runs["bm25s"]["4"] == {} and runs["rank_bm25"]["4"] == {}  # no known tokens: nothing retrieved
    assert runs["bm25s"]["5"] == {} and runs["rank_bm25"]["5"] == {}  # stopwords only


def test_lucene_scores_match_formula():
    r = BM25Retriever(backend="bm25s", variant="lucene", k1=0.9, b=0.4, stemmer=None, stopwords=None)
    r.index(chunks())
    run = r.search([Query("q", "garden")], top_k=10)["q"]
    tok = r.tokenizer
    docs = [tok(c.indexed_text) for c in chunks()]
    avgdl = np.mean([len(d) for d in docs])
    n = sum("garden" in d for d in docs)
    idf = np.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
    expected = {}
    for c, d in zip(chunks(), docs):
        tf = d.count("garden")
        if tf:
            expected[c.id] = idf * tf / (tf + 0.9 * (1 - 0.4 + 0.4 * len(d) / avgdl))
    assert set(run) == set(expected)
    for cid, score in expected.items():
        assert run[cid] == pytest.approx(score, rel=1e-5)


def test_exact_identifier_ranks_first():
    r = BM25Retriever()
    r.index(chunks())
    assert list(r.search([QUERIES[2]], top_k=2)["3"])[0] == "f#0"


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="retriever.variant 'lucene' is not available with retriever.backend=rank_bm25"):
        BM25Retriever(backend="rank_bm25", variant="lucene")
    with pytest.raises(ValueError, match="retriever.backend must be one of bm25s\\|rank_bm25"):
        BM25Retriever(backend="elastic")
    with pytest.raises(ValueError, match="empty corpus"):
        BM25Retriever().index([])


def test_top_k_larger_than_corpus():
    r = BM25Retriever()
    r.index(chunks())
    assert len(r.search([QUERIES[0]], top_k=1000)["1"]) <= len(DOCS)
