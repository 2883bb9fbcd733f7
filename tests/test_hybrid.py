"""The hybrid retriever end to end: fusion sweeps reuse cached base runs, and the fusion weight is
chosen on train only."""

import random

import pytest
from hydra.utils import instantiate
from hydra.core.override_parser.overrides_parser import OverridesParser

from benchmarks.datasets.base import Dataset
from benchmarks.evaluation.metrics import evaluate
from benchmarks.tracking.store import RunRecord
from benchmarks.studies.fusion import fusion_points, select_best
from benchmarks.run.retrieval import retrieve
from chunkers import Document, NoChunker, Query
from retrievers.bm25 import BM25Retriever
from retrievers.dense import DenseRetriever
from retrievers.hybrid import HybridRetriever
from fakes import CountingEncoder, FixedRetriever
from test_config import compose_cfg

DOCS = [Document(f"d{i}", f"Doc {i}", f"Text about subject {i} with model X-{i}00 and topic {i % 4}.") for i in range(20)]
QUERIES = [Query(f"q{i}", f"subject {i} model X-{i}00") for i in range(6)]
TRAIN = [Query(f"t{i}", f"topic {i % 4} text") for i in range(4)]


def tiny():
    return Dataset("tiny", DOCS, QUERIES, {q.id: {f"d{i}": 1} for i, q in enumerate(QUERIES)}, tune_queries=TRAIN,
                   tune_qrels={q.id: {f"d{i}": 1} for i, q in enumerate(TRAIN)}, tune_split="train")


def hybrid(cache, encoder, **kw):
    return HybridRetriever(retrievers={
        "bm25": BM25Retriever(cache_dir=str(cache)),
        "dense": DenseRetriever(encoder=encoder, cache_dir=str(cache))}, **kw)


def test_sweep_of_14_points_reuses_base_runs(tmp_path):
    first = hybrid(tmp_path, CountingEncoder())
    assert retrieve(tiny(), NoChunker(), first, top_k=10).ranking.stats["index_builds"] == 2  # bm25 + faiss, once
    points = [dict(fusion="wsum", weights=[w / 10, 1 - w / 10]) for w in range(11)]
    points += [dict(fusion="rrf", rrf_k=k) for k in (10, 60, 100)]
    runs = []
    for p in points:
        enc = CountingEncoder()
        h = hybrid(tmp_path, enc, **p)
        res = retrieve(tiny(), NoChunker(), h, top_k=10)
        runs.append(res.run)
        assert enc.calls == 0 and res.ranking.stats["index_builds"] == 0
    assert len({str(r) for r in runs}) > 1  # the points really differ


def test_fusion_sweep_preset_has_14_points_not_a_grid():
    cfg = compose_cfg(["experiment=fusion_sweep"])
    from hydra import compose, initialize_config_dir
    from test_config import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hcfg = compose(config_name="config", overrides=["experiment=fusion_sweep"], return_hydra_config=True)
    params = hcfg.hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    total = 1
    for o in overrides:
        total *= len(list(o.sweep_iterator()))
    assert total == 14
    assert cfg.retriever.fusion == "wsum" and list(cfg.retriever.weights) == [0.5, 0.5]
    assert cfg.dataset.tune_split == "train"
    assert isinstance(instantiate(compose_cfg(["retriever=hybrid"]).retriever), HybridRetriever)


# Constructed case: on train queries the relevant doc is d1, ranked 1st by retriever A and last by B.
# With min-max wsum, d1 scores w, d2 scores 1 - w/2, d3 scores (1 - w)/2, so d1 ranks first exactly when
# w > 2/3: the train optimum is first reached at w = 0.7. Test queries prefer B.
A = {"t1": {"d1": 3, "d2": 2, "d3": 1}, "t2": {"d1": 3, "d2": 2, "d3": 1},
     "e1": {"d1": 3, "d2": 2, "d3": 1}, "e2": {"d1": 3, "d2": 2, "d3": 1}}
B = {q: {"d2": 3, "d3": 2, "d1": 1} for q in A}
CASE_DOCS = [Document(d, d, d) for d in ("d1", "d2", "d3", "d4")]


def sweep_case(test_qrels):
    ds = Dataset("case", CASE_DOCS, [Query("e1", "x"), Query("e2", "y")], test_qrels,
                 tune_queries=[Query("t1", "x"), Query("t2", "y")], tune_qrels={"t1": {"d1": 1}, "t2": {"d1": 1}},
                 tune_split="train")
    records = []
    for i in range(11):
        w = i / 10
        h = HybridRetriever(retrievers={"a": FixedRetriever(A), "b": FixedRetriever(B)}, weights=[w, 1 - w])
        res = retrieve(ds, NoChunker(), h, top_k=3)
        metrics = {"train_ndcg_at_10": evaluate(ds.tune_qrels, res.tune_run, [10]).mean["ndcg_at_10"]}
        if ds.qrels:
            metrics["ndcg_at_10"] = evaluate(ds.qrels, res.run, [10]).mean["ndcg_at_10"]
        records.append(RunRecord(f"run{i}", {"retriever.fusion": "wsum", "retriever.weights": f"[{w}, {1 - w}]"},
                                 metrics, {"dataset": "case"}, i))
    wsum, _ = fusion_points(records)
    return select_best(wsum, "ndcg_at_10")[0], records


def test_chosen_weight_is_train_argmax_and_ignores_test_judgments():
    best, records = sweep_case({"e1": {"d2": 1}, "e2": {"d2": 1}})
    assert best == pytest.approx(0.7)
    train = [r.metrics["train_ndcg_at_10"] for r in records]
    assert train[7] == 1.0 and max(train[:7]) < 1.0
    test = [r.metrics["ndcg_at_10"] for r in records]
    assert test.index(max(test)) < 7  # the test optimum is elsewhere: choosing on test would differ
    rng = random.Random(0)
    shuffled = {q: {rng.choice(["d1", "d2", "d3", "d4"]): 1} for q in ("e1", "e2")}
    assert sweep_case(shuffled)[0] == best
    assert sweep_case({})[0] == best  # test judgments deleted
