"""Optional extras: a component whose extra is not installed is a clear config error naming the extra."""

from __future__ import annotations

import pytest

import retrievers.infrastructure.extras as extras


@pytest.fixture
def without(monkeypatch):
    def hide(*modules):
        real = extras.installed
        monkeypatch.setattr(extras, "installed", lambda m: m not in modules and real(m))

    return hide


def test_dense_without_the_dense_extra_is_a_config_error(without):
    from benchmarks.run.precheck import precheck

    without("sentence_transformers", "torch")
    err = precheck(["retriever=dense"])
    assert err is not None and "pip install 'retrieval-bench[dense]'" in err and "sentence_transformers" in err
    assert precheck(["retriever=bm25"]) is None  # the core needs none of it
    assert "retrieval-bench[dense]" in precheck(["retriever=hybrid"])  # the dense base inside the hybrid
    assert "retrieval-bench[dense]" in precheck(["reranker=cross_encoder"])


def test_static_dense_needs_model2vec_only(without):
    from benchmarks.run.precheck import precheck

    without("sentence_transformers", "torch")
    assert precheck(["retriever=dense_static"]) is None
    without("model2vec")
    assert "model2vec" in precheck(["retriever=dense_static"])


def test_launcher_without_the_cluster_extra(without):
    from benchmarks.run.precheck import precheck

    without("hydra_plugins.hydra_joblib_launcher")
    err = precheck(["-m", "hydra/launcher=local_parallel", "retriever.k1=1.0,1.2"])
    assert err is not None and "retrieval-bench[cluster]" in err


def test_need_names_every_missing_extra(without):
    without("openvino", "onnxruntime")
    with pytest.raises(Exception, match=r"retrieval-bench\[onnx,openvino\]"):
        extras.need("x", "openvino", "onnxruntime")
