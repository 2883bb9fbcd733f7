"""#23: one corpus's shards encoded by other engines (a local Ray, submitit's local executor), resumed after a
killed worker, and searched exactly block by block or approximately with recall against exact reported."""

import os
from pathlib import Path

import numpy as np
import pytest

from chunkers import Document, NoChunker
from fakes import CountingEncoder
from retrievers import shards
from retrievers.engines import RayEngine, SlurmEngine
from retrievers.dense import DenseRetriever, Index

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command

DOCS = [Document(f"d{i}", f"T{i}", f"passage {i} about topic {i % 7} and item {i * 13 % 101} w{i}") for i in range(400)]
CHUNKS = [c for d in DOCS for c in NoChunker().chunk(d)]
PLAIN = CountingEncoder().encode([c.indexed_text for c in CHUNKS], kind="doc")


class DyingOnce(CountingEncoder):
    """Kills its own worker process the first time it meets the passage ``victim`` (a marker file makes it once)."""

    def __init__(self, victim, marker):
        super().__init__()
        self.victim, self.marker = victim, str(marker)

    def encode(self, texts, *, kind):
        if kind == "doc" and any(self.victim in t for t in texts) and not os.path.exists(self.marker):
            Path(self.marker).write_text("died")
            os._exit(1)  # a worker killed mid-shard
        with open(self.marker + ".log", "a") as fh:
            fh.write(f"{len(texts)}\n")
        return super().encode(texts, kind=kind)


ray = pytest.importorskip("ray")


@pytest.fixture(autouse=True)
def workers_import_the_tests(monkeypatch):
    """Ray's and submitit's worker processes unpickle this module's encoders: they need the tests folder."""
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")


def test_ray_shards_equal_local_and_a_killed_worker_redoes_only_its_shard(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "TARGET", 40)
    marker = tmp_path / "died"
    enc = DyingOnce("passage 250 ", marker)
    r = DenseRetriever(encoder=enc, cache_dir=str(tmp_path / "c"), engine=RayEngine(workers=2))
    r.index(CHUNKS)
    assert marker.exists()  # a worker did die mid-shard
    assert np.array_equal(np.asarray(r._emb), PLAIN)  # bit-identical to one process
    encoded = sum(int(x) for x in Path(str(marker) + ".log").read_text().split())
    plan = shards.plan(CHUNKS, enc.identity(), target=40)
    victim = next(s for s in plan if any("passage 250 " in c.indexed_text for c in CHUNKS[s.start:s.stop]))
    # every passage once, plus what the dead worker had finished of its shard before dying (lost with it)
    assert len(CHUNKS) <= encoded < len(CHUNKS) + len(victim)
    assert r.encoded_texts == len(CHUNKS) and not list((tmp_path / "c").rglob("*.lock"))


def test_ray_encodes_only_the_missing_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "TARGET", 40)
    cache = tmp_path / "c"
    plan = shards.plan(CHUNKS, CountingEncoder().identity(), target=40)
    from retrievers.cache import Cache

    enc = CountingEncoder()
    for s in plan[:3]:  # an earlier, interrupted run left three shards
        part = CHUNKS[s.start:s.stop]
        shards.write_shard(Cache(cache), s, [c.indexed_text for c in part], [c.id for c in part],
                           lambda t: enc.encode(t, kind="doc"), enc.identity())
    r = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(cache), engine=RayEngine(workers=1))
    r.index(CHUNKS)
    assert r.encoded_texts == len(CHUNKS) - sum(len(s) for s in plan[:3])
    assert np.array_equal(np.asarray(r._emb), PLAIN)


def test_submitit_local_job_array(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(shards, "TARGET", 100)
    r = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / "c"), engine=SlurmEngine(cluster="local", timeout_min=5))
    r.index(CHUNKS)
    assert np.array_equal(np.asarray(r._emb), PLAIN)
    logs = list((tmp_path / "c" / "submitit").rglob("*_log.out"))
    assert len(logs) == len(shards.plan(CHUNKS, CountingEncoder().identity(), target=100)) > 1  # one job per shard


def test_engines_need_the_cache():
    from retrievers.infrastructure.errors import RetrieverError

    with pytest.raises(RetrieverError, match="cache.mode=use"):
        DenseRetriever(encoder=CountingEncoder(), cache_mode="off", cache_dir="/tmp/x", engine=RayEngine())


def test_exact_search_block_by_block_equals_one_block_and_faiss(tmp_path):
    from chunkers import Query

    queries = [Query(f"q{i}", f"topic {i % 7} item {i * 5 % 101}") for i in range(30)]
    runs = {}
    for name, kw in {"flat": {"index": Index("flat")}, "one": {"index": Index("exact", search_block=10**6)},
                     "blocks": {"index": Index("exact", search_block=37)}}.items():
        r = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / name), **kw)
        r.index(CHUNKS)
        runs[name] = r.search(queries, top_k=10)
    for q in queries:
        assert list(runs["blocks"][q.id]) == list(runs["one"][q.id])  # the block size changes nothing
        assert np.allclose(list(runs["blocks"][q.id].values()), list(runs["one"][q.id].values()), atol=0)
        top = [d for d, s in runs["flat"][q.id].items()]
        assert set(top[:5]) == set(list(runs["blocks"][q.id])[:5]) or \
            np.allclose(sorted(runs["flat"][q.id].values()), sorted(runs["blocks"][q.id].values()), atol=1e-6)


def test_approximate_indexes_report_recall_against_exact(tmp_path):
    from chunkers import Query

    queries = [Query(f"q{i}", f"topic {i % 7} item {i * 5 % 101}") for i in range(20)]
    for kind in ("hnsw", "ivfpq"):
        r = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / kind), index=Index(kind, ivf_nlist=4,
                           pq_m=8, pq_bits=4, ann_check_queries=15))
        r.index(CHUNKS)
        r.search(queries, top_k=10)
        stats = r.stats()
        assert stats["ann_checked_queries"] == 15 and 0.0 < stats["ann_recall_at_10"] <= 1.0, (kind, stats)
    assert "ann_recall_at_10" not in DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / "f")).stats()


def test_a_worker_decides_device_auto_where_it_runs(monkeypatch):
    """An encoder pickled on a CPU-only head node to a GPU actor encodes on the GPU, with the precision the cache
    key names; an explicit device is kept."""
    import pickle

    import retrievers.encoders as encoders

    monkeypatch.setenv("RBENCH_CPU_FLAGS", "")
    monkeypatch.setattr(encoders, "cuda_count", lambda: 0)  # the head node has none
    head = encoders.SentenceTransformerEncoder(device="auto", precision="auto")
    assert head.placement.device == "cpu" and head.precision == "fp32"
    monkeypatch.setattr(encoders, "cuda_count", lambda: 1)  # the worker has a GPU
    worker = pickle.loads(pickle.dumps(head))
    assert worker.placement.device == "cuda" and worker.precision == "fp32" and worker._model is None
    fixed = pickle.loads(pickle.dumps(encoders.SentenceTransformerEncoder(device="cpu")))
    assert fixed.placement.device == "cpu"


def test_an_engine_that_cannot_start_is_one_line_naming_the_key(tmp_path, monkeypatch):
    """#35: engine=slurm with slurm_cluster=slurm where there is no SLURM ('Could not detect srun' traceback), a Ray
    address nothing listens on (Ray retried for minutes), and more IVF lists than passages (faiss's C++ assertion)."""
    import socket
    import time

    from chunkers.types import Chunk
    from retrievers.infrastructure.errors import RetrieverError

    class Dir:
        dir = str(tmp_path)

    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(RetrieverError, match=r"engine=slurm: no SLURM here .* engine.cluster=local"):
        SlurmEngine(cluster="slurm").run([], [], cache=Dir(), encode=None, encoder=None, identity=None, step=1)
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(RetrieverError, match=rf"engine.address: cannot reach Ray at 127.0.0.1:{port} \(nothing answers"):
        RayEngine(address=f"127.0.0.1:{port}").run([], [], cache=Dir(), encode=None, encoder=None, identity=None, step=1)
    assert time.perf_counter() - t0 < 30
    encoder = CountingEncoder()
    r = DenseRetriever(encoder=encoder, cache_dir=str(tmp_path / "c"), index=Index("ivf", ivf_nlist=50))
    with pytest.raises(RetrieverError, match=r"retriever.index.ivf_nlist=50: more IVF lists than the 20 passages"):
        r.index([Chunk(f"d{i}", f"d{i}", "", f"text number {i}", 0, 14) for i in range(20)])
    assert encoder.calls == 0  # before anything was encoded
