"""Encoding where the hardware is: device resolution (auto -> CUDA fp16 / CPU), multi-process pools, backend and
precision checks, the ONNX / OpenVINO exports giving the model's own vectors, and progress off a terminal."""

from __future__ import annotations

import io

import numpy as np
import pytest

import retrievers.encoders as enc
from retrievers.infrastructure.errors import RetrieverError


@pytest.mark.parametrize("gpus, device, precision, processes, want", [
    (0, "auto", "auto", None, ("cpu", "fp32", ())),
    (1, "auto", "auto", None, ("cuda", "fp16", ())),
    (1, "auto", "fp32", None, ("cuda", "fp32", ())),
    (4, "auto", "auto", None, ("cuda", "fp16", ("cuda:0", "cuda:1", "cuda:2", "cuda:3"))),
    (4, "auto", "auto", 2, ("cuda", "fp16", ("cuda:0", "cuda:1"))),
    (4, "cuda:1", "auto", 1, ("cuda:1", "fp16", ())),
    (0, "cpu", "auto", 3, ("cpu", "fp32", ("cpu", "cpu", "cpu"))),
    (2, "cpu", "bf16", None, ("cpu", "bf16", ())),
])
def test_placement(monkeypatch, gpus, device, precision, processes, want):
    monkeypatch.setattr(enc, "cuda_count", lambda: gpus)
    p = enc.resolve_placement(device, "torch", precision, processes)
    assert (p.device, p.precision, p.pool) == want


@pytest.mark.parametrize("gpus, device, backend, precision, pattern", [
    (0, "cuda", "torch", "auto", "no CUDA GPU is available"),
    (0, "cpu", "torch", "fp16", "fp16 with backend=torch needs a CUDA device"),
    (0, "cpu", "torch", "int8", "int8 needs backend=onnx or openvino"),
])
def test_placement_errors(monkeypatch, gpus, device, backend, precision, pattern):
    monkeypatch.setattr(enc, "cuda_count", lambda: gpus)
    with pytest.raises(RetrieverError, match=pattern):
        enc.resolve_placement(device, backend, precision)


def test_backend_precision_checks_and_config_errors():
    from benchmarks.run.precheck import precheck
    from retrievers.backends import check

    with pytest.raises(RetrieverError, match="not available with backend=onnx"):
        check("onnx", "bf16")
    with pytest.raises(RetrieverError, match="backend must be one of"):
        check("tensorrt", "fp32")
    err = precheck(["retriever=dense", "retriever.encoder.backend=onnx", "retriever.encoder.precision=bf16"])
    assert err is not None and "retriever.encoder.precision: bf16 is not available with backend=onnx" in err
    err = precheck(["retriever=dense", "retriever.encoder.backend=tensorrt"])
    assert err is not None and "retriever.encoder.backend" in err


def test_missing_backend_extra_is_named(monkeypatch):
    import retrievers.infrastructure.extras as extras
    from benchmarks.run.precheck import precheck

    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda m: m != "openvino" and real(m))
    err = precheck(["retriever=dense", "retriever.encoder.backend=openvino"])
    assert err is not None and "retrieval-bench[openvino]" in err


def test_identity_keys_backend_and_precision_but_keeps_torch_fp32_keys():
    plain = enc.SentenceTransformerEncoder(device="cpu")
    assert "backend" not in plain.identity()  # torch fp32: the cache keys every earlier run wrote
    pytest.importorskip("onnxruntime")
    int8 = enc.SentenceTransformerEncoder(device="cpu", backend="onnx", precision="int8")
    assert int8.identity()["backend"] == "onnx" and int8.identity()["precision"] == "int8"
    assert int8.identity() != enc.SentenceTransformerEncoder(device="cpu", backend="onnx").identity()


TEXTS = ["Solar panels convert sunlight into electricity.", "Wind turbines turn in the wind.",
         "A much longer passage about hydroelectric dams, reservoirs, turbines and the grid, " * 3, "short"]


@pytest.mark.slow
@pytest.mark.parametrize("backend, module", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_exported_fp32_gives_the_models_vectors(tmp_path, backend, module):
    pytest.importorskip(module)
    ref = enc.SentenceTransformerEncoder(device="cpu", batch_size=2).encode(TEXTS, kind="doc")
    got = enc.SentenceTransformerEncoder(device="cpu", batch_size=2, backend=backend,
                                         export_dir=str(tmp_path)).encode(TEXTS, kind="doc")
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    assert list(tmp_path.iterdir())  # the export is cached for the next process


@pytest.mark.slow
def test_onnx_int8_is_close_and_cached(tmp_path):
    pytest.importorskip("onnxruntime")
    ref = enc.SentenceTransformerEncoder(device="cpu").encode(TEXTS, kind="doc")
    e = enc.SentenceTransformerEncoder(device="cpu", backend="onnx", precision="int8", export_dir=str(tmp_path))
    got = e.encode(TEXTS, kind="doc")
    cos = np.sum(got * ref, axis=1)
    assert cos.min() > 0.9 and np.abs(got - ref).max() > 1e-4  # quantised: close, not equal
    folder = next(tmp_path.iterdir())
    assert (folder / "model.int8.onnx").is_file() and (folder / "model.onnx").is_file()


def test_calibration_sample_is_seeded_bounded_and_in_corpus_order():
    from retrievers.backends import calibration_sample

    texts = [f"passage {i}" for i in range(1000)]
    sample = calibration_sample(texts)
    assert len(sample) == 300 == len(set(sample)) and sample == calibration_sample(list(texts))
    assert sample == sorted(sample, key=texts.index) and calibration_sample(texts[:5]) == texts[:5]


@pytest.mark.slow
def test_openvino_int8_is_calibrated_on_the_corpus_cached_and_close(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    nncf = pytest.importorskip("nncf")

    def make():
        return enc.SentenceTransformerEncoder(device="cpu", batch_size=4, backend="openvino", precision="int8",
                                              export_dir=str(tmp_path))

    corpus = TEXTS * 3
    first = make()
    with pytest.raises(RetrieverError, match="calibrated on the corpus"):
        first.encode(TEXTS, kind="query")  # queries before any corpus: no silent calibration on them
    first.calibrate(corpus)
    got = first.encode(TEXTS, kind="doc")
    ref = enc.SentenceTransformerEncoder(device="cpu").encode(TEXTS, kind="doc")
    cos = np.sum(got * ref, axis=1)
    assert cos.min() > 0.9 and np.abs(got - ref).max() > 1e-4  # quantised: close, not equal
    [folder] = list(tmp_path.iterdir())  # the refused call exported nothing
    assert (folder / "model.int8.xml").is_file() and (folder / "model.int8.bin").is_file()

    calls = []
    real = nncf.quantize
    monkeypatch.setattr(nncf, "quantize", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    again = make()
    again.calibrate(list(corpus))
    assert again.identity() == first.identity() and "calibration" in again.identity()
    assert np.allclose(again.encode(TEXTS, kind="doc"), got, atol=1e-6) and calls == []  # the cached int8 model
    other = make()
    other.calibrate(TEXTS[:2])  # another corpus: another model, another embeddings key
    assert other.identity()["calibration"] != first.identity()["calibration"]


@pytest.mark.slow
def test_dense_retriever_calibrates_before_keying_and_searching(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from chunkers.types import Chunk, Query
    from retrievers.dense import DenseRetriever

    chunks = [Chunk(f"c{i}", f"d{i}", "", t, 0, len(t)) for i, t in enumerate(TEXTS)]
    runs = []
    for _ in range(2):  # the second retriever: embeddings, model and run all from the cache
        encoder = enc.SentenceTransformerEncoder(device="cpu", backend="openvino", precision="int8",
                                                 export_dir=str(tmp_path / "models"))
        r = DenseRetriever(encoder=encoder, cache_dir=str(tmp_path / "cache"))
        r.index(chunks)
        runs.append(r.search([Query("q", "how do wind turbines work")], top_k=2))
        assert "calibration" in encoder.identity()
    assert runs[0] == runs[1] and next(iter(runs[0]["q"])) == "c1"
    assert r.encoded_texts == 0  # warm: nothing encoded


def test_missing_nncf_names_the_openvino_extra(monkeypatch):
    import retrievers.infrastructure.extras as extras
    from benchmarks.run.precheck import precheck

    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda m: m != "nncf" and real(m))
    err = precheck(["retriever=dense", "retriever.encoder.backend=openvino", "retriever.encoder.precision=int8"])
    assert err is not None and "nncf" in err and "retrieval-bench[openvino]" in err
    assert precheck(["retriever=dense", "retriever.encoder.backend=openvino", "retriever.encoder.precision=fp32"]) is None


def test_progress_off_a_terminal_logs_count_rate_eta(monkeypatch):
    import time

    from retrievers.infrastructure.progress import Progress

    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(1000, "dense: encode corpus", "passages", every=10, stream=out) as p:
        for _ in range(10):
            clock[0] += 5
            p.update(100)
    lines = out.getvalue().splitlines()
    assert lines[0] == "rbench: dense: encode corpus: 200/1,000 passages (20.0/s, ETA 40s)"
    assert lines[-1] == "rbench: dense: encode corpus: 1,000/1,000 passages in 50s (20.0/s)"
    assert len(lines) == 6  # every 10 s of a 50 s step, then the closing line
    quick = io.StringIO()
    with Progress(10, "fast", stream=quick) as p:
        p.update(10)
    assert quick.getvalue() == ""  # steps under 2 s print nothing
