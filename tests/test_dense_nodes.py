"""#34: a dense retriever's settings are three nodes, each spelled once — ``retriever.encoder`` (the ``encoder``
group), ``retriever.index`` (``retrievers.dense.Index``) and ``retriever.engine`` — and a key given where it was
before is a config error saying where it is now; a run stored with the flat layout still builds its retriever."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.audit import current_layout
from benchmarks.run.precheck import precheck
from benchmarks.run.validate import problems
from retrievers.dense import DenseRetriever, Index, regrouped
from retrievers.encoders import SentenceTransformerEncoder, StaticModelEncoder
from test_config import compose_cfg

#: a dense node as runs stored before the encoder and index nodes wrote it (a real stored config.yaml's, commit 4577c94)
FLAT = {"_target_": "retrievers.dense.DenseRetriever", "model": "sentence-transformers/all-MiniLM-L6-v2",
        "batch_size": 16, "device": "cpu", "encoder_backend": "torch", "precision": "fp32", "threads": None,
        "processes": None, "shard_passages": None, "engine": {"_target_": "retrievers.engines.LocalEngine"},
        "index": "hnsw", "search_block": 65536, "pq_m": 16, "pq_bits": 8, "ann_check_queries": 7, "hnsw_m": 12,
        "hnsw_ef_construction": 200, "hnsw_ef_search": 64, "ivf_nlist": None, "ivf_nprobe": 16,
        "query_prefix": "query: ", "doc_prefix": "", "normalize": "auto", "max_seq_length": None, "revision": None,
        "cache_dir": "/tmp/c", "cache_mode": "use"}


def test_the_dense_options_are_nodes_each_spelled_once():
    node = compose_cfg(["retriever=dense"]).retriever
    assert node.encoder._target_ == "retrievers.encoders.SentenceTransformerEncoder"
    assert node.index._target_ == "retrievers.dense.Index" and node.index.kind == "flat"
    assert node.engine._target_ == "retrievers.engines.LocalEngine"
    flat_keys = {k for k in node if not isinstance(node[k], (dict, type(node)))} - {"_target_"}
    assert flat_keys == {"shard_passages", "cache_dir", "cache_mode"}
    # each node's keys are the parameters of the class it builds, and nothing else
    import inspect

    assert set(node.encoder) - {"_target_"} <= set(inspect.signature(SentenceTransformerEncoder).parameters)
    assert set(node.index) - {"_target_"} == {f for f in inspect.signature(Index).parameters}
    # the global encoder precision still reaches the encoder node
    assert compose_cfg(["retriever=dense", "encoder_precision=fp32"]).retriever.encoder.precision == "fp32"


def test_an_encoder_is_a_group_option_per_dense_retriever():
    static = compose_cfg(["retriever=dense_static"]).retriever
    assert dict(static.encoder) == {"_target_": "retrievers.encoders.StaticModelEncoder", "path": None, "batch_size": 1024}
    same = compose_cfg(["retriever=dense", "encoder@retriever.encoder=static"]).retriever
    assert same.encoder == static.encoder
    # in a hybrid, the dense base has its own encoder and index nodes
    hybrid = compose_cfg(["retriever=hybrid", "retriever.retrievers.dense.index.kind=hnsw",
                          "encoder@retriever.retrievers.dense.encoder=static"]).retriever
    assert hybrid.retrievers.dense.index.kind == "hnsw"
    assert hybrid.retrievers.dense.encoder._target_ == "retrievers.encoders.StaticModelEncoder"
    built = instantiate(hybrid)
    dense = built.stages["dense"].retriever
    assert isinstance(dense.encoder, StaticModelEncoder) and dense.index_kind == "hnsw"


def test_each_node_is_validated_by_its_own_class():
    cfg = compose_cfg(["retriever=dense", "retriever.index.kind=annoy", "retriever.encoder.batch_size=0",
                       "retriever.encoder.backend=onnx", "retriever.encoder.precision=bf16"])
    found = problems(cfg)
    assert any(p.startswith("retriever.index.kind: expected one of flat|exact|hnsw|ivf|ivfpq") for p in found), found
    assert any(p.startswith("retriever.encoder.batch_size: expected an integer >= 1") for p in found), found
    assert "retriever.encoder.precision: bf16 is not available with backend=onnx (choose fp32|int8)" in found, found
    static = compose_cfg(["retriever=dense_static", "+retriever.encoder.model=x"])
    assert any("retriever.encoder.model: not an option of StaticModelEncoder" in p for p in problems(static))
    # the encoder group's options live inside a dense retriever: at the top level nothing reads them
    assert any(p.startswith("encoder: no component reads this key") for p in problems(compose_cfg(["+encoder.model=x"])))


@pytest.mark.parametrize("override, said", [
    ("retriever.model=/models/e5", "retriever.model: no such key; it is retriever.encoder.model (retriever.encoder.model=/models/e5)"),
    ("retriever.precision=fp32", "it is retriever.encoder.precision (retriever.encoder.precision=fp32)"),
    ("retriever.encoder_backend=onnx", "it is retriever.encoder.backend (retriever.encoder.backend=onnx)"),
    ("retriever.hnsw_ef_search=64", "it is retriever.index.hnsw_ef_search (retriever.index.hnsw_ef_search=64)"),
    ("retriever.index=hnsw", "retriever.index: a node of settings (kind, search_block,"),
    ("retriever.index=hnsw", "set one of its keys, e.g. retriever.index.kind=hnsw"),
    ("retriever.encoder=static", "choose another option with encoder@retriever.encoder=<sentence_transformers|static>"),
    ("encoder@retriever.encoder=nope", "no option 'nope' in config group 'encoder'; options: sentence_transformers, static"),
])
def test_a_key_given_where_it_was_says_where_it_is_now(override, said):
    err = precheck(["retriever=dense", override])
    assert err is not None and said in err, err


def test_a_run_stored_with_the_flat_layout_builds_the_same_retriever():
    node = regrouped(FLAT)
    assert node["index"] == {"_target_": "retrievers.dense.Index", "kind": "hnsw", "search_block": 65536, "hnsw_m": 12,
                             "hnsw_ef_construction": 200, "hnsw_ef_search": 64, "ivf_nlist": None, "ivf_nprobe": 16,
                             "pq_m": 16, "pq_bits": 8, "ann_check_queries": 7}
    assert node["encoder"]["backend"] == "torch" and node["encoder"]["query_prefix"] == "query: "
    assert "model" not in node and "encoder_backend" not in node and node["cache_dir"] == "/tmp/c"
    assert regrouped(node) == node  # a grouped node is left as it is
    old = instantiate(OmegaConf.create(node))
    new = instantiate(compose_cfg(["retriever=dense", "retriever.encoder.batch_size=16", "retriever.encoder.device=cpu",
                                   "retriever.encoder.precision=fp32", 'retriever.encoder.query_prefix="query: "',
                                   "retriever.index.kind=hnsw", "retriever.index.hnsw_m=12",
                                   "retriever.index.hnsw_ef_search=64", "retriever.index.ann_check_queries=7",
                                   "cache.dir=/tmp/c", "engine=local"]).retriever)
    assert isinstance(old, DenseRetriever) and old.encoder.identity() == new.encoder.identity()
    assert old.spec == new.spec and old.encoder.batch_size == new.encoder.batch_size == 16
    # an encoder object given then (retriever=dense_static) took the place of the flat model keys
    static = regrouped({**FLAT, "encoder": {"_target_": "retrievers.encoders.StaticModelEncoder", "path": None}})
    assert static["encoder"] == {"_target_": "retrievers.encoders.StaticModelEncoder", "path": None}
    # a whole stored config: every dense node regrouped, wherever it stands (a hybrid's base included)
    stored = OmegaConf.create({"retriever": {"_target_": "retrievers.hybrid.HybridRetriever",
                                             "retrievers": {"dense": FLAT}}, "top_k": 10})
    assert current_layout(stored).retriever.retrievers.dense.index.kind == "hnsw"


def test_an_audit_companion_is_composed_as_a_run_composes_it_inside_a_run_too():
    """The audit's default companions are composed from the config (a dense one's encoder node included) with the
    run's cache and precision; the story audits its baseline inside its own Hydra job, where Hydra is initialised."""
    from hydra import initialize_config_dir

    from benchmarks.diagnosis.companions import default_retriever
    from benchmarks.paths import CONF_DIR

    cfg = compose_cfg(["cache.dir=/tmp/elsewhere", "cache.mode=refresh", "encoder_precision=fp32"])
    outside = default_retriever("dense", cfg)
    assert outside.cache_dir == "/tmp/elsewhere" and outside.cache_mode == "refresh"
    assert outside.encoder.precision == "fp32" and outside.engine._target_ == "retrievers.engines.LocalEngine"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert default_retriever("dense", cfg) == outside


def test_the_bi_encoder_reranker_takes_every_dense_stages_precision():
    """encoder_precision is one key for every dense stage: the bi-encoder reranker's encoder too (it was always auto)."""
    from retrievers.bm25 import BM25Retriever
    from retrievers.rerank import BiEncoderReranker

    assert compose_cfg(["reranker=bi_encoder", "encoder_precision=fp32"]).reranker.precision == "fp32"
    assert compose_cfg(["reranker=bi_encoder"]).reranker.precision == "auto"
    found = problems(compose_cfg(["reranker=bi_encoder", "reranker.precision=int8"]))
    assert "reranker.precision: expected one of auto|fp32|bf16|fp16, got 'int8'" in found, found
    reranker = BiEncoderReranker(BM25Retriever(), model="sentence-transformers/all-MiniLM-L6-v2", device="cpu",
                                 precision="fp32")
    assert reranker._dense.encoder.precision == "fp32" and "precision" not in reranker._dense.encoder.identity()


def test_a_store_comparison_pairs_a_dense_run_logged_flat_with_its_grouped_twin():
    """compare_stores (the check that a refactor left every number where it was) reads a dense run logged before the
    nodes in today's layout, so the model and index settings still tell runs apart when pairing."""
    from benchmarks.scripts.compare_stores import current_params, pair

    flat = {"retriever": "dense", "retriever.model": "m", "retriever.index": "hnsw", "retriever.hnsw_m": "12",
            "retriever.encoder_backend": "torch", "retriever.cache_mode": "use", "dataset.name": "scifact"}
    grouped = current_params(flat)
    assert grouped == {"retriever": "dense", "retriever.encoder._target_": "retrievers.encoders.SentenceTransformerEncoder",
                       "retriever.encoder.model": "m", "retriever.encoder.backend": "torch",
                       "retriever.index._target_": "retrievers.dense.Index", "retriever.index.kind": "hnsw",
                       "retriever.index.hnsw_m": "12", "retriever.cache_mode": "use", "dataset.name": "scifact"}
    assert current_params(grouped) == grouped  # today's layout is left as it is
    nested = current_params({"retriever": "hybrid", "retriever.retrievers.dense.model": "m",
                             "retriever.retrievers.dense.index": "flat", "retriever.retrievers.bm25.k1": "0.9"})
    assert nested["retriever.retrievers.dense.encoder.model"] == "m" and nested["retriever.retrievers.bm25.k1"] == "0.9"
    # two dense runs that differ only by model pair with their own twins, not with each other
    before = {frozenset(current_params({**flat, "retriever.model": m}).items()): {"ndcg_at_10": v}
              for m, v in (("a", 0.1), ("b", 0.2))}
    after = {frozenset({**{k: v for k, v in grouped.items() if not k.endswith("_target_")},
                        "retriever.encoder.model": m}.items()): {"ndcg_at_10": v} for m, v in (("b", 0.2), ("a", 0.1))}
    assert sorted((b["ndcg_at_10"], a["ndcg_at_10"]) for b, a, _ in pair(before, after)) == [(0.1, 0.1), (0.2, 0.2)]
