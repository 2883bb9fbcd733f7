"""Reranking stages (#12): a hand-computed reorder, a tiny locally built cross-encoder (loading, 0 model calls
warm, composition after hybrid and after decomposition), the bi-encoder against direct cosine scores, config
wiring, and the offline failure for an unknown model."""

from __future__ import annotations

import pytest

from benchmarks.datasets.base import Dataset
from benchmarks.run.retrieval import retrieve
from chunkers import Document, NoChunker, Query
from chunkers.windows import FixedTokenChunker
from fakes import CountingEncoder, FixedRetriever
from retrievers.base import top_k_of
from retrievers.bm25 import BM25Retriever
from retrievers.decomposition import DecomposingRetriever, IterativeDecomposer
from retrievers.dense import DenseRetriever
from retrievers.hybrid import HybridRetriever
from retrievers.rerank import BiEncoderReranker, CrossEncoderReranker, Reranker

WORDS = ("the a of to is leave policy days annual sick remote work error code printer reset office "
         "how many what does mean allowed per year staff").split()
DOCS = [
    Document("leave", "Leave policy", "Staff get 25 annual leave days per year. Sick days are separate."),
    Document("remote", "Remote work", "Remote work is allowed two days a week with manager approval."),
    Document("printer", "Printer errors", "Error code E-17 on the office printer: reset the printer."),
    Document("office", "Office", "The office is open from eight to six."),
]
QUERIES = [Query("q1", "how many annual leave days per year"), Query("q2", "what does printer error code mean")]
QRELS = {"q1": {"leave": 1}, "q2": {"printer": 1}}


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A BERT cross-encoder with random weights and a 30-word vocabulary, saved to a local folder."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-ce")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, num_labels=1, initializer_range=1.0)
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return str(folder)


class TableReranker(Reranker):
    """Scores from a table keyed by (query, passage text); counts nothing itself (the base class does)."""

    kind = "table"

    def __init__(self, inner, table, **kw):
        import tempfile
        from pathlib import Path

        self.table = table
        folder = Path(tempfile.gettempdir()) / "rbench-table-reranker"  # a fixed local "model" folder
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text('{"kind": "lookup table"}')
        super().__init__(inner, model=str(folder), **kw)  # a local folder: no hub, keyed by its files' hash

    def score(self, pairs):
        return [self.table[(q, t.split("\n", 1)[-1])] for q, t in pairs]


def test_hand_computed_rerank_reorders_top_n_and_keeps_the_tail(tmp_path):
    docs = [Document(d, d.upper(), f"text {d}") for d in ("d1", "d2", "d3", "d4")]
    inner = FixedRetriever({"q": {"d1": 4.0, "d2": 3.0, "d3": 2.0, "d4": 1.0}})
    table = {("x", "text d1"): 0.1, ("x", "text d2"): 0.9, ("x", "text d3"): 0.5}
    rr = TableReranker(inner, table, top_n=3, cache_dir=str(tmp_path))
    ds = Dataset("t", docs, [Query("q", "x")], {"q": {"d2": 1}})
    res = retrieve(ds, NoChunker(), rr, top_k=4)
    # the top 3 by the model's scores (d2 0.9 > d3 0.5 > d1 0.1); d4 was not reranked and stays below them
    assert res.run["q"] == {"d2": 0.9, "d3": 0.5, "d1": 0.1, "d4": pytest.approx(0.1 - 1.0)}
    assert list(res.run["q"]) == ["d2", "d3", "d1", "d4"]
    assert res.chunk_run["q"] == {"d2#0": 0.9, "d3#0": 0.5, "d1#0": 0.1}
    assert res.ranking.stats["rerank_model_calls"] == 3 and res.ranking.calls_mean() == 1
    # warm: the same pairs come from the cache
    again = retrieve(ds, NoChunker(), TableReranker(FixedRetriever(inner.scores), table, top_n=3, cache_dir=str(tmp_path)),
                     top_k=4)
    assert again.run == res.run and again.ranking.stats["rerank_model_calls"] == 0


def test_rerank_scores_each_retrieved_chunk_and_folds_with_max(tmp_path):
    docs = [Document("a", "A", "alpha one. alpha two."), Document("b", "B", "beta.")]
    from chunkers.types import Chunk

    chunks = [Chunk("a#0", "a", "A", "alpha one.", 0, 10), Chunk("a#1", "a", "A", "alpha two.", 11, 21),
              Chunk("b#0", "b", "B", "beta.", 0, 5)]

    class Chunked(FixedRetriever):
        def search(self, queries, *, top_k):
            return {q.id: {"a#1": 3.0, "b#0": 2.0, "a#0": 1.0} for q in queries}

    table = {("x", "alpha one."): 0.2, ("x", "alpha two."): 0.7, ("x", "beta."): 0.8}
    rr = TableReranker(Chunked({}), table, top_n=2, cache_dir=str(tmp_path))
    rr.index(chunks)
    ranking = rr.rank([Query("q", "x")], top_k=2)
    assert ranking.run["q"] == {"b": 0.8, "a": 0.7}  # a = max(0.2, 0.7): both of its retrieved chunks scored
    assert ranking.chunk_run["q"] == {"b#0": 0.8, "a#1": 0.7, "a#0": 0.2}
    assert docs  # documents only describe the chunks above


def test_tiny_cross_encoder_loads_caches_and_reranks_after_hybrid(tiny_cross_encoder, tmp_path):
    from sentence_transformers import CrossEncoder

    ds = Dataset("t", DOCS, QUERIES, QRELS)
    hybrid = HybridRetriever(retrievers={"bm25": BM25Retriever(cache_dir=str(tmp_path)),
                                         "dense": DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path))})
    rr = CrossEncoderReranker(hybrid, model=tiny_cross_encoder, top_n=3, batch_size=4, cache_dir=str(tmp_path))
    res = retrieve(ds, NoChunker(), rr, top_k=4)
    assert res.ranking.stats["rerank_model_calls"] == 6  # 2 queries x top 3
    assert res.ranking.calls_mean() == 2  # reranking adds no base search: the hybrid's two
    # the reranked top 3 is the model's own order of the hybrid's top 3
    before = retrieve(ds, NoChunker(), HybridRetriever(retrievers={
        "bm25": BM25Retriever(cache_dir=str(tmp_path)),
        "dense": DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path))}), top_k=4)
    model = CrossEncoder(tiny_cross_encoder, device="cpu")
    chunk_text = {c.doc_id: c.indexed_text for d in DOCS for c in NoChunker().chunk(d)}
    for q in QUERIES:
        top3 = list(before.run[q.id])[:3]
        scores = model.predict([[q.text, chunk_text[d]] for d in top3])
        expected = list(top_k_of({d: float(s) for d, s in zip(top3, scores)}))
        assert list(res.run[q.id])[:3] == expected
        assert list(res.run[q.id])[3:] == [d for d in before.run[q.id] if d not in expected]
        assert res.run[q.id][expected[0]] == pytest.approx(float(max(scores)), abs=1e-6)
    # warm re-run: 0 model calls, same ranking
    rr2 = CrossEncoderReranker(HybridRetriever(retrievers={
        "bm25": BM25Retriever(cache_dir=str(tmp_path)),
        "dense": DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path))}),
        model=tiny_cross_encoder, top_n=3, batch_size=4, cache_dir=str(tmp_path))
    warm = retrieve(ds, NoChunker(), rr2, top_k=4)
    assert warm.ranking.stats["rerank_model_calls"] == 0 and warm.run == res.run
    # another setting is another cache entry
    rr3 = CrossEncoderReranker(hybrid, model=tiny_cross_encoder, top_n=3, max_length=32, cache_dir=str(tmp_path))
    assert retrieve(ds, NoChunker(), rr3, top_k=4).ranking.stats["rerank_model_calls"] == 6


def test_cross_encoder_after_decomposition_keeps_records_and_calls(tiny_cross_encoder, tmp_path):
    ds = Dataset("t", DOCS, QUERIES, QRELS)
    dec = DecomposingRetriever(retriever=BM25Retriever(cache_dir=str(tmp_path)), decomposer=IterativeDecomposer(hops=2, m=1))
    rr = CrossEncoderReranker(dec, model=tiny_cross_encoder, top_n=2, cache_dir=str(tmp_path))
    res = retrieve(ds, NoChunker(), rr, top_k=3)
    assert res.ranking.calls_mean() == 2  # question + one follow-up each
    assert all(len(res.ranking.records[q.id]["subqueries"]) == 1 for q in QUERIES)
    # one model call per candidate chunk (at most top_n = 2 documents a query; BM25 may return fewer)
    assert res.ranking.stats["rerank_model_calls"] == sum(len(res.chunk_run[q.id]) for q in QUERIES) > 2


def test_cross_encoder_on_chunks(tiny_cross_encoder, tmp_path):
    ds = Dataset("t", DOCS, QUERIES, QRELS)
    chunker = FixedTokenChunker(size=8, overlap=0)
    rr = CrossEncoderReranker(BM25Retriever(cache_dir=str(tmp_path)), model=tiny_cross_encoder, top_n=2,
                              cache_dir=str(tmp_path))
    res = retrieve(ds, chunker, rr, top_k=3)
    for q in QUERIES:
        ranked_chunks = list(res.chunk_run[q.id])
        top2 = list(res.run[q.id])[:2]
        # every scored chunk belongs to one of the two reranked documents; the best chunk's document is first
        assert {c.split("#")[0] for c in ranked_chunks} <= set(top2)
        assert ranked_chunks[0].split("#")[0] == top2[0]


def test_bi_encoder_scores_are_cosine_similarities(tmp_path):
    import numpy as np

    from retrievers.encoders import packaged_path

    ds = Dataset("t", DOCS, QUERIES, QRELS)
    rr = BiEncoderReranker(BM25Retriever(cache_dir=str(tmp_path)), model="sentence-transformers/all-MiniLM-L6-v2",
                           top_n=4, cache_dir=str(tmp_path))
    res = retrieve(ds, NoChunker(), rr, top_k=4)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(packaged_path("sentence-transformers/all-MiniLM-L6-v2")), device="cpu")
    chunk_text = {c.doc_id: c.indexed_text for d in DOCS for c in NoChunker().chunk(d)}
    for q in QUERIES:
        docs = list(res.run[q.id])
        qv = model.encode([q.text], normalize_embeddings=True)[0]
        dv = model.encode([chunk_text[d] for d in docs], normalize_embeddings=True)
        cos = dv @ qv
        assert np.allclose([res.run[q.id][d] for d in docs], cos, atol=1e-5)
        assert list(cos) == sorted(cos, reverse=True)
    assert list(res.run["q1"])[0] == "leave" and list(res.run["q2"])[0] == "printer"
    assert res.ranking.stats["rerank_encoded_texts"] == len(DOCS)  # the corpus, once
    # another first stage: the corpus embeddings come from the cache (shared with dense retrieval)
    other = BiEncoderReranker(FixedRetriever({"q1": {"office": 1.0, "remote": 0.5}}),
                              model="sentence-transformers/all-MiniLM-L6-v2", top_n=2, cache_dir=str(tmp_path))
    again = retrieve(Dataset("t", DOCS, QUERIES[:1], {"q1": {"leave": 1}}), NoChunker(), other, top_k=2)
    assert again.ranking.stats["rerank_encoded_texts"] == 0 and again.ranking.stats["rerank_model_calls"] == 2
    q1 = model.encode([QUERIES[0].text], normalize_embeddings=True)[0]
    office = model.encode([chunk_text["office"]], normalize_embeddings=True)[0]
    assert again.run["q1"]["office"] == pytest.approx(float(office @ q1), abs=1e-5)


def test_reranker_config_group_and_offline_unknown_model(monkeypatch, tmp_path):
    from retrievers.infrastructure import hub
    from retrievers.infrastructure.errors import RetrieverError
    from retrievers.pipeline import build_pipeline
    from retrievers.stage import DocumentRanker
    from test_config import compose_cfg

    assert isinstance(build_pipeline(compose_cfg([])), DocumentRanker)  # reranker=none by default
    staged = build_pipeline(compose_cfg(["reranker=bi_encoder", "reranker.top_n=7", "retriever=hybrid"]))
    assert isinstance(staged, BiEncoderReranker) and staged.top_n == 7
    assert isinstance(staged.inner, HybridRetriever)
    after_versions = build_pipeline(compose_cfg(["reranker=bi_encoder", "versions=decay", "decomposer=iterative"]))
    assert type(after_versions.inner).__name__ == "VersionAwareRetriever"
    assert type(after_versions.inner.inner).__name__ == "DecomposingRetriever"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    with pytest.raises(RetrieverError, match="reranker.model='nobody/no-such-cross-encoder' cannot be loaded"):
        build_pipeline(compose_cfg(["reranker=cross_encoder", "reranker.model=nobody/no-such-cross-encoder"]))
    hub.hub_reachable.cache_clear()


class ReverseStage:
    """A new stage written as a user would: takes the stage before, reverses its top documents."""

    def __init__(self, inner, *, top_n: int = 3):
        self.inner, self.top_n = inner, top_n

    def index(self, chunks):
        self.inner.index(chunks)

    def rank(self, queries, *, top_k):
        from retrievers.types import Ranking

        before = self.inner.rank(queries, top_k=top_k)
        run = {q: {d: float(i) for i, d in enumerate(list(top_k_of(hits))[: self.top_n])} for q, hits in before.run.items()}
        return Ranking(run, before.chunk_lists, None, before.records, before.calls, before.stats)


def test_a_new_stage_is_one_module_plus_one_yaml(tmp_path):
    """Copy conf/, add one yaml naming a class (this module), and the builder puts it in the pipeline."""
    import shutil

    from hydra import compose, initialize_config_dir

    from retrievers.pipeline import build_pipeline
    from test_config import CONF

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "reranker" / "reverse.yaml").write_text("_target_: test_rerank.ReverseStage\n_partial_: true\ntop_n: 2\n")
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["reranker=reverse", f"cache.dir={tmp_path}/c"])
    stage = build_pipeline(cfg)
    assert isinstance(stage, ReverseStage) and stage.top_n == 2
    ds = Dataset("t", DOCS, QUERIES, QRELS)
    res = retrieve(ds, NoChunker(), stage, top_k=4)
    plain = retrieve(ds, NoChunker(), BM25Retriever(cache_dir=str(tmp_path / "c")), top_k=4)
    for q in QUERIES:
        assert list(res.run[q.id]) == list(reversed(list(plain.run[q.id])[:2]))
