"""#23 point 5: ``precision=auto`` picks the fastest setting within the documented tolerance for the CPU it finds
(faked flag sets here), says what it chose, keeps the choice in the cache key, and fp32 stays one override away."""

import pytest

from retrievers import backends
from retrievers.backends import AUTO_TOLERANCE, auto_setting
from retrievers.encoders import SentenceTransformerEncoder, resolve_placement


def test_the_choice_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda module: True)
    assert auto_setting("torch", frozenset({"avx2", "avx512_bf16", "avx512_vnni"}))[:2] == ("torch", "bf16")
    assert auto_setting("auto", frozenset({"avx2", "amx_bf16"}))[:2] == ("openvino", "bf16")  # any backend: fastest
    assert auto_setting("openvino", frozenset({"amx_bf16"}))[:2] == ("openvino", "bf16")
    # no BF16: nothing faster stays within tolerance (int8 is never chosen automatically)
    assert auto_setting("auto", frozenset({"avx2", "avx512_vnni"}))[:2] == ("torch", "fp32")
    assert auto_setting("auto", frozenset())[:2] == ("torch", "fp32")
    assert auto_setting("torch", frozenset({"avx2", "avx512_vnni"}))[:2] == ("torch", "fp32")  # emulated bf16: slower
    # a backend asked for by name keeps it
    assert auto_setting("onnx", frozenset({"avx512_bf16"}))[:2] == ("onnx", "fp32")
    # OpenVINO not installed: not chosen
    monkeypatch.setattr(backends, "installed", lambda module: module != "openvino")
    assert auto_setting("openvino", frozenset({"avx512_bf16"}))[:2] == ("openvino", "fp32")
    assert auto_setting("auto", frozenset({"avx512_bf16"}))[:2] == ("torch", "bf16")
    assert AUTO_TOLERANCE["ndcg_at_10"] <= 0.002  # the documented tolerance (results/encode_speed.md)


def test_placement_says_what_it_chose_and_exact_is_one_override_away(monkeypatch, capsys):
    monkeypatch.setattr(backends, "installed", lambda module: True)
    monkeypatch.setenv("RBENCH_CPU_FLAGS", "avx2,avx512_bf16")
    import retrievers.encoders as encoders

    monkeypatch.setattr(encoders, "_ANNOUNCED", set())
    p = resolve_placement("cpu", "torch", "auto")
    assert (p.backend, p.precision) == ("torch", "bf16")
    resolve_placement("cpu", "torch", "auto")
    err = capsys.readouterr().err
    assert err.count("precision=auto chose torch bf16") == 1 and "avx512_bf16" in err
    assert "retriever.encoder.backend=torch retriever.encoder.precision=fp32" in err
    exact = resolve_placement("cpu", "torch", "fp32")
    assert (exact.backend, exact.precision) == ("torch", "fp32")
    monkeypatch.setenv("RBENCH_CPU_FLAGS", "avx2")
    plain = resolve_placement("cpu", "torch", "auto")
    assert (plain.backend, plain.precision) == ("torch", "fp32") and capsys.readouterr().err == ""


def test_the_choice_is_in_the_cache_key(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda module: True)
    monkeypatch.setenv("RBENCH_CPU_FLAGS", "avx512_bf16")
    fast = SentenceTransformerEncoder(device="cpu", precision="auto").identity()
    monkeypatch.setenv("RBENCH_CPU_FLAGS", "avx2")
    exact = SentenceTransformerEncoder(device="cpu", precision="auto").identity()
    assert (fast.get("backend"), fast.get("precision")) == ("torch", "bf16")
    assert "backend" not in exact and fast != exact  # torch fp32 keeps the keys it always had


def test_a_named_precision_with_the_auto_backend(monkeypatch):
    assert resolve_placement("cpu", "auto", "fp32").backend == "torch"
    # int8: the first installed backend that has it (OpenVINO, then ONNX Runtime)
    monkeypatch.setattr(backends, "installed", lambda module: True)
    assert resolve_placement("cpu", "auto", "int8").backend == "openvino"
    monkeypatch.setattr(backends, "installed", lambda module: module != "openvino")
    assert resolve_placement("cpu", "auto", "int8").backend == "onnx"
    with pytest.raises(Exception):
        resolve_placement("cpu", "torch", "int8")


def test_bf16_vectors_are_unit_length_and_close_to_fp32():
    """What auto picks on a BF16 CPU, run for real (emulated where the CPU lacks BF16): normalised again in fp32."""
    import numpy as np

    texts = ["exact inner product", "faiss flat index", "a superseded travel policy"]
    half = SentenceTransformerEncoder(device="cpu", precision="bf16").encode(texts, kind="doc")
    full = SentenceTransformerEncoder(device="cpu", precision="fp32").encode(texts, kind="doc")
    assert half.dtype == np.float32 and np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-5)
    assert float((half * full).sum(1).min()) >= AUTO_TOLERANCE["mean_cosine"]
