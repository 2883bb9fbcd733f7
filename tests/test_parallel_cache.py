"""Parallel workers share the cache safely: two processes needing the same embeddings encode them once."""

import multiprocessing as mp
import time

import numpy as np

from chunkers import Document, NoChunker
from fakes import CountingEncoder
from retrievers.dense import DenseRetriever

DOCS = [Document(f"d{i}", f"T{i}", f"text number {i} about topic {i % 3}") for i in range(40)]


class SlowLoggingEncoder(CountingEncoder):
    """Logs every corpus encode to a file shared by the processes, and is slow enough to overlap."""

    def __init__(self, log_path):
        super().__init__()
        self.log_path = log_path

    def encode(self, texts, *, kind):
        if kind == "doc":
            with open(self.log_path, "a") as fh:
                fh.write(f"{len(texts)}\n")
            time.sleep(1.5)
        return super().encode(texts, kind=kind)


def _worker(cache_dir, log_path, start_at, out_path):
    while time.time() < start_at:  # both processes start the index at the same moment
        time.sleep(0.01)
    r = DenseRetriever(encoder=SlowLoggingEncoder(log_path), cache_dir=cache_dir)
    r.index([c for d in DOCS for c in NoChunker().chunk(d)])
    np.save(out_path, np.asarray(r._emb))


def test_two_processes_encode_the_same_corpus_once(tmp_path):
    ctx = mp.get_context("fork")
    log_path = tmp_path / "encodes.log"
    start_at = time.time() + 1.0
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "cache"), str(log_path), start_at, str(tmp_path / f"e{i}.npy")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log_path.read_text().split() == ["40"]  # one corpus encode between the two processes
    a, b = np.load(tmp_path / "e0.npy"), np.load(tmp_path / "e1.npy")
    assert a.shape == (40, 64) and np.array_equal(a, b)
    entries = [p for p in (tmp_path / "cache" / "embeddings").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1  # no temporary folder left behind


def test_corpus_encoded_in_blocks_into_a_memory_map(tmp_path, monkeypatch):
    import retrievers.dense as dense

    monkeypatch.setattr(dense.shards, "STEP", 16)
    enc = CountingEncoder()
    enc.batch_size = 8  # calls of max(STEP, 2 batches) = 16 texts
    r = DenseRetriever(encoder=enc, cache_dir=str(tmp_path))
    r.index([c for d in DOCS for c in NoChunker().chunk(d)])
    assert enc.calls == 3 and enc.texts == 40  # 16 + 16 + 8
    assert isinstance(r._emb, np.memmap)
    whole = CountingEncoder().encode([c.indexed_text for d in DOCS for c in NoChunker().chunk(d)], kind="doc")
    assert np.allclose(np.asarray(r._emb), whole)
    off = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / "off"), cache_mode="off")
    off.index([c for d in DOCS for c in NoChunker().chunk(d)])
    assert np.allclose(off._emb, whole) and not (tmp_path / "off").exists()


def test_bm25s_index_is_saved_once_and_loaded_memory_mapped(tmp_path):
    from chunkers import Query
    from retrievers.bm25 import BM25Retriever

    chunks = [c for d in DOCS for c in NoChunker().chunk(d)]
    first = BM25Retriever(cache_dir=str(tmp_path))
    first.index(chunks)
    a = first.search([Query("q", "topic 1 number")], top_k=5)
    second = BM25Retriever(cache_dir=str(tmp_path))
    second.index(chunks)
    b = second.search([Query("q2", "topic 1 number")], top_k=5)  # a new query: the run cache cannot answer it
    assert first.index_builds == 1 and second.index_builds == 0
    assert list(a["q"].items()) == list(b["q2"].items())
    assert isinstance(second._model.scores["data"], np.memmap)
