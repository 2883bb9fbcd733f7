"""Trustworthy under bad input, faults and untrusted artifacts (#13).

A committed battery: every case runs the real ``rbench`` entry point in-process and asserts exit 2, a
message naming the file:line (or record) or the config key, and no traceback. Then the readers' acceptance
cases (BOM, gzip), a Hypothesis fuzz of the readers, cache corruption and quarantine, leftovers of dead
processes, signals (subprocess), untrusted run configs and secrets.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_llm import endpoint  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parent.parent
RBENCH = str(Path(sys.executable).parent / "rbench")

CORPUS = [{"_id": "d1", "title": "Leave", "text": "Annual leave is 25 days."},
          {"_id": "d2", "title": "Remote", "text": "Remote work two days a week."},
          {"_id": "d3", "title": "Printer", "text": "Error E-17: reset the printer."}]
QUERIES = [{"_id": "q1", "text": "how many leave days"}, {"_id": "q2", "text": "printer error"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n"


def jsonl(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def beir_folder(root: Path, *, corpus=None, queries=None, qrels=None, raw_corpus: bytes | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    if raw_corpus is not None:
        (root / "corpus.jsonl").write_bytes(raw_corpus)
    elif corpus is not False:
        (root / "corpus.jsonl").write_text(jsonl(CORPUS if corpus is None else corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text(jsonl(QUERIES if queries is None else queries), encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text(QRELS if qrels is None else qrels, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("store")


def rbench(argv: list[str], capsys, store: Path) -> tuple[int, str]:
    """The ``rbench`` console entry, in this process: (exit code, stderr)."""
    from hydra.core.global_hydra import GlobalHydra

    import benchmarks.cli as cli

    old = sys.argv
    sys.argv = ["rbench", *argv, f"tracking.uri=sqlite:///{store}/m.db", f"tracking.artifact_root={store}/art",
                f"cache.dir={store}/cache", f"hydra.run.dir={store}/hydra"]
    code = 0
    try:
        cli.run()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    finally:
        sys.argv = old
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        GlobalHydra.instance().clear()
    return code, capsys.readouterr().err


def assert_clear_error(code: int, err: str, pattern: str) -> None:
    import re

    assert code == 2, err
    assert "Traceback" not in err, err
    assert re.search(pattern, err), f"{pattern!r} not in:\n{err}"


# ------------------------------------------------------------------------------------------ bad data (CLI)
def _q(**kw):
    return [{**QUERIES[0], **kw}, QUERIES[1]]


def _c(**kw):
    return [{**CORPUS[0], **kw}, *CORPUS[1:]]


DATA_CASES = {
    "malformed JSON line": (dict(corpus=[CORPUS[0], '{"_id": "d2", "text": ', CORPUS[2]]), r"corpus\.jsonl:2: malformed JSON"),
    "line is not an object": (dict(corpus=[CORPUS[0], "[1, 2]"]), r"corpus\.jsonl:2: expected a JSON object"),
    "missing _id": (dict(corpus=[{"title": "x", "text": "y"}, *CORPUS]), r"corpus\.jsonl:1: missing field '_id'"),
    "missing text": (dict(corpus=[{"_id": "d9", "title": "x"}, *CORPUS]), r"corpus\.jsonl:1: missing field 'text'"),
    "null _id": (dict(corpus=_c(_id=None)), r"corpus\.jsonl:1: field '_id' must be a non-empty string or an integer, got null"),
    "empty _id": (dict(corpus=_c(_id="  ")), r"corpus\.jsonl:1: field '_id' is empty"),
    "list _id": (dict(corpus=_c(_id=[1])), r"corpus\.jsonl:1: field '_id' must be .* got list"),
    "boolean _id": (dict(corpus=_c(_id=True)), r"corpus\.jsonl:1: field '_id' must be .* got bool"),
    "null text": (dict(corpus=_c(text=None)), r"corpus\.jsonl:1: field 'text' must be a string, got null"),
    "numeric text": (dict(corpus=_c(text=5)), r"corpus\.jsonl:1: field 'text' must be a string, got int"),
    "numeric title": (dict(corpus=_c(title=7)), r"corpus\.jsonl:1: field 'title' must be a string, got int"),
    "duplicate doc id": (dict(corpus=[*CORPUS, CORPUS[0]]), r"corpus\.jsonl:4: duplicate doc id 'd1' \(first on line 1\)"),
    "empty corpus": (dict(corpus=[]), r"corpus\.jsonl: empty corpus"),
    "no corpus file": (dict(corpus=False), r"corpus\.jsonl: corpus file not found"),
    "latin-1 corpus": (dict(raw_corpus=jsonl(CORPUS[:2]).encode() + '{"_id": "d3", "title": "Café", "text": "x"}\n'.encode("latin-1")),
                       r"corpus\.jsonl:3: not UTF-8 text \(byte 0xe9"),
    "malformed query": (dict(queries=["{nope", QUERIES[1]]), r"queries\.jsonl:1: malformed JSON"),
    "null query id": (dict(queries=_q(_id=None)), r"queries\.jsonl:1: field '_id' must be .* got null"),
    "null query text": (dict(queries=_q(text=None)), r"queries\.jsonl:1: field 'text' must be a string, got null"),
    "duplicate query id": (dict(queries=[*QUERIES, QUERIES[0]]), r"queries\.jsonl:3: duplicate query id 'q1'"),
    "fractional score": (dict(qrels=QRELS + "q1\td2\t1.9\n"), r"test\.tsv:4: relevance score '1.9' is not an integer"),
    "infinite score": (dict(qrels=QRELS + "q1\td2\tinf\n"), r"test\.tsv:4: relevance score 'inf' is not an integer"),
    "NaN score": (dict(qrels=QRELS + "q1\td2\tnan\n"), r"test\.tsv:4: relevance score 'nan' is not an integer"),
    "word score": (dict(qrels=QRELS + "q1\td2\thigh\n"), r"test\.tsv:4: relevance score 'high' is not a number"),
    "two columns": (dict(qrels=QRELS + "q1\td2\n"), r"test\.tsv:4: expected 3 tab-separated columns"),
    "conflicting judgments": (dict(qrels=QRELS + "q1\td1\t2\n"), r"test\.tsv:4: query 'q1' judges doc 'd1' 2 here and 1 on line 2"),
    "unknown doc in qrels": (dict(qrels=QRELS + "q1\td404\t1\n"), r"test\.tsv:4: doc id 'd404' is not in .*corpus\.jsonl"),
    "unknown query in qrels": (dict(qrels=QRELS + "q404\td1\t1\n"), r"test\.tsv:4: query id 'q404' is not in .*queries\.jsonl"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_beir_data_is_a_clear_error(case, tmp_path, capsys, store):
    spec, pattern = DATA_CASES[case]
    folder = beir_folder(tmp_path / "ds", **spec)
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, store)
    assert_clear_error(code, err, pattern)


def test_missing_split_lists_the_available_ones(tmp_path, capsys, store):
    folder = beir_folder(tmp_path / "ds")
    code, err = rbench(["dataset=beir", f"dataset.path={folder}", "dataset.split=dev"], capsys, store)
    assert_clear_error(code, err, r"qrels/dev\.tsv: no qrels for split 'dev'; dataset\.split must be one of: test")


def test_dataset_path_that_is_not_a_folder(tmp_path, capsys, store):
    code, err = rbench(["dataset=beir", f"dataset.path={tmp_path / 'nowhere'}"], capsys, store)
    assert_clear_error(code, err, r"nowhere: dataset\.path is not a folder")


def test_hotpotqa_array_errors_name_the_record_counted_from_one(tmp_path, capsys, store):
    good = {"_id": "a", "question": "q?", "answer": "x", "type": "bridge", "context": [["T", ["S."]]],
            "supporting_facts": [["T", 0]]}
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([good, {**good, "_id": "b", "question": None}]), encoding="utf-8")
    code, err = rbench(["dataset=hotpotqa", f"dataset.path={path}"], capsys, store)
    assert_clear_error(code, err, r"hotpot\.json: record 2: field 'question' must be a string, got null")


def test_musique_jsonl_errors_name_the_true_line(tmp_path, capsys, store):
    rec = {"id": "2hop_1", "question": "q?", "paragraphs": [{"idx": 0, "title": "T", "paragraph_text": "x",
                                                               "is_supporting": True}], "question_decomposition": []}
    path = tmp_path / "musique.jsonl"
    path.write_text(json.dumps(rec) + "\n\n" + json.dumps({**rec, "id": None}) + "\n", encoding="utf-8")
    code, err = rbench(["dataset=musique", f"dataset.path={path}"], capsys, store)
    assert_clear_error(code, err, r"musique\.jsonl:3: field 'id' must be .* got null")


# ------------------------------------------------------------------------------------------ bad config (CLI)
CONFIG_CASES = {
    "unknown dataset option": (["dataset=beirr"], r"no option 'beirr' in config group 'dataset'; options: beir, enterprise"),
    "unknown retriever option": (["retriever=colbert"], r"no option 'colbert' in config group 'retriever'; options: bm25, dense"),
    "unknown experiment": (["experiment=nope"], r"no option 'nope' in config group 'experiment'; options: beir_full, beir_gap"),
    "unknown option in a sweep": (["-m", "reranker=none,colbert"], r"no option 'colbert' in config group 'reranker'"),
    "key typo": (["retriever.k2=1"], r"config error: retriever\.k2: no such key; did you mean retriever\.k1\?(?![\s\S]*\+retriever)"),
    "key typo with dataset=files": (["dataset=files", "retriever.k=5"],
                                    r"config error: retriever\.k: no such key; did you mean retriever\.k1\?(?![\s\S]*To append)"),
    "nested key typo": (["metrics.kk=[1]"], r"metrics\.kk: no such key; did you mean metrics\.k\?"),
    "k1 not a number": (["retriever.k1=abc"], r"retriever\.k1: expected a number, got 'abc'"),
    "k1 negative": (["retriever.k1=-3"], r"retriever\.k1: expected a number >= 0, got -3"),
    "b above one": (["retriever.b=2"], r"retriever\.b: expected a number in \[0, 1\], got 2"),
    "bm25 backend": (["retriever.backend=lucene"], r"retriever\.backend: expected one of bm25s\|rank_bm25"),
    "bm25 variant": (["retriever.variant=bm99"], r"retriever\.variant: expected one of lucene"),
    "empty k list": (["metrics.k=[]"], r"metrics\.k: expected a non-empty list"),
    "k not a number": (["metrics.k=[ten]"], r"metrics\.k: expected integers >= 1, got 'ten'"),
    "negative k": (["metrics.k=[-5,10]"], r"metrics\.k: expected integers >= 1, got -5"),
    "zero k": (["metrics.k=[0,10]"], r"metrics\.k: expected integers >= 1, got 0"),
    "top_k below k": (["top_k=5"], r"top_k: must be >= the largest metrics\.k \(100\), got 5"),
    "top_k zero": (["top_k=0"], r"top_k: expected an integer >= 1, got 0"),
    "budget negative": (["metrics.budget=-1"], r"metrics\.budget: expected an integer >= 1, got -1"),
    "cache mode": (["cache.mode=sometimes"], r"cache\.mode: expected one of use\|refresh\|off"),
    "rerun not boolean": (["rerun=perhaps"], r"rerun: expected true\|false, got 'perhaps'"),
    "limit zero": (["dataset.limit=0"], r"dataset\.limit: expected an integer >= 1, got 0"),
    "strict not boolean": (["dataset.strict=maybe"], r"dataset\.strict: expected true\|false"),
    "fusion method": (["retriever=hybrid", "retriever.fusion=nope"], r"retriever\.fusion: expected one of wsum\|rrf"),
    "fusion norm": (["retriever=hybrid", "retriever.norm=scaled"], r"retriever\.norm: expected one of min-max"),
    "fusion weights": (["retriever=hybrid", "retriever.weights=[1]"], r"retriever\.weights: expected 2 numbers >= 0, not all 0 \(one per retriever: bm25, dense\), got \[1\]"),
    "hybrid base k1": (["retriever=hybrid", "retriever.retrievers.bm25.k1=-1"], r"retriever\.retrievers\.bm25\.k1: expected a number >= 0"),
    "encoder precision": (["encoder_precision=fp8"], r"encoder_precision: expected one of auto\|fp32\|bf16\|int8\|fp16"),
    "dense index": (["retriever=dense", "retriever.index.kind=annoy"], r"retriever\.index\.kind: expected one of flat\|exact\|hnsw\|ivf\|ivfpq"),
    "dense batch size": (["retriever=dense", "retriever.encoder.batch_size=0"], r"retriever\.encoder\.batch_size: expected an integer >= 1"),
    "dense device": (["retriever=dense", "retriever.encoder.device=tpu"], r"retriever\.encoder\.device: expected cpu\|cuda\|cuda:N\|auto"),
    "decomposer hops": (["decomposer=iterative", "decomposer.hops=0"], r"decomposer\.hops: expected an integer >= 1"),
    "decomposer follow": (["decomposer=iterative", "decomposer.follow=hyperlinks"], r"decomposer\.follow: expected one of title\|links"),
    "decomposer fusion": (["decomposer=heuristic", "decomposer.fusion=mean"], r"decomposer\.fusion: expected one of rrf\|max\|sum"),
    "router force": (["router=rules", "router.rules.force=dense"], r"router\.rules\.force: expected one of None\|simple"),
    "router with decomposer": (["router=rules", "decomposer=heuristic"], r"decomposer: with a router, decomposition is set per route"),
    "route retriever setting": (["router=rules", "router.routes.exact_term.retriever.rrf_k=0"],
                                r"router\.routes\.exact_term\.retriever\.rrf_k: expected an integer >= 1"),
    "versions factor": (["versions=decay", "versions.superseded_factor=2"], r"versions\.superseded_factor: expected a number in \[0, 1\]"),
    "versions half life": (["versions=decay", "versions.half_life_days=0"], r"versions\.half_life_days: expected a number > 0"),
    "reranker top_n": (["reranker=bi_encoder", "reranker.top_n=0"], r"reranker\.top_n: expected an integer >= 1"),
    "reranker device": (["reranker=cross_encoder", "reranker.device=gpu"], r"reranker\.device: expected cpu\|cuda"),
    "chunk size": (["chunker=fixed_tokens", "chunker.size=0"], r"chunker\.size: expected an integer >= 1"),
    "chunk overlap": (["chunker=fixed_tokens", "chunker.overlap=200"], r"chunker\.overlap: must be smaller than chunker\.size \(128\)"),
    "aggregate": (["chunker.aggregate=mean"], r"chunker\.aggregate: expected one of max\|sum\|first"),
    "pipeline group": (["pipeline=[decomposer,nothing]"], r"pipeline: expected a list of config groups"),
    "bad override syntax": (["retriever.k1=[1,"], r"config error"),
    "bad value in a sweep": (["-m", "retriever.k1=0.9,abc"], r"\(sweep point 2 of 2: retriever\.k1=abc\)[\s\S]*retriever\.k1: expected a number, got 'abc'"),
    "bad value in a preset's sweep": (["-m", "experiment=handbook", "top_k=0"],
                                      r"\(sweep point 1 of 8: .*retriever=bm25.*\)[\s\S]*top_k: expected an integer >= 1"),
    "several problems at once": (["retriever.k1=-1", "top_k=0"], r"top_k: expected an integer >= 1[\s\S]*retriever\.k1: expected a number >= 0"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_fails_before_any_work(case, capsys, store):
    argv, pattern = CONFIG_CASES[case]
    t0 = time.perf_counter()
    code, err = rbench(argv, capsys, store)
    assert_clear_error(code, err, pattern)
    assert time.perf_counter() - t0 < 5  # composed and checked only: no data read, nothing encoded


def test_config_errors_are_fast_and_exit_2_from_the_installed_command(tmp_path):
    t0 = time.perf_counter()
    res = subprocess.run([RBENCH, "retriever=hybrid", "retriever.fusion=nope"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 2 and "retriever.fusion: expected one of" in res.stderr and "Traceback" not in res.stderr
    assert time.perf_counter() - t0 < 10  # a new process: interpreter + Hydra; no data, no model, no ranx


# ------------------------------------------------------------------------------------------ readers
def test_readers_accept_bom_and_gzip(tmp_path):
    from benchmarks.datasets.beir import BeirLoader

    folder = beir_folder(tmp_path / "bom", raw_corpus=b"\xef\xbb\xbf" + jsonl(CORPUS).encode())
    assert [d.id for d in BeirLoader(path=str(folder)).load().corpus] == ["d1", "d2", "d3"]
    gz = beir_folder(tmp_path / "gz", corpus=False)
    with gzip.open(gz / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(jsonl(CORPUS))
    (gz / "qrels" / "test.tsv").rename(gz / "qrels" / "test.tsv.gz.tmp")
    with gzip.open(gz / "qrels" / "test.tsv.gz", "wt", encoding="utf-8") as fh:
        fh.write(QRELS)
    (gz / "qrels" / "test.tsv.gz.tmp").unlink()
    ds = BeirLoader(path=str(gz)).load()
    assert [d.text for d in ds.corpus] == [c["text"] for c in CORPUS] and ds.qrels == {"q1": {"d1": 1}, "q2": {"d3": 1}}
    assert ds.name == "gz"  # a dataset.path run is named after its folder, not the default dataset.name


def test_integer_valued_scores_and_repeated_identical_judgments_are_fine(tmp_path):
    from benchmarks.datasets.beir import read_qrels

    path = tmp_path / "q.tsv"
    path.write_text("q1\td1\t2.0\nq1\td1\t2\nq1\td2\t0\n", encoding="utf-8")
    assert read_qrels(path)[0] == {"q1": {"d1": 2, "d2": 0}}


def test_reader_fuzz_raises_data_errors_only():
    from hypothesis import HealthCheck, given, settings, strategies as st

    from benchmarks.datasets.beir import read_corpus, read_qrels, read_queries
    from benchmarks.errors import DataError
    import tempfile

    base = {"corpus.jsonl": jsonl(CORPUS).encode(), "queries.jsonl": jsonl(QUERIES).encode(), "test.tsv": QRELS.encode()}
    readers = {"corpus.jsonl": read_corpus, "queries.jsonl": read_queries, "test.tsv": read_qrels}
    junk = st.sampled_from([b"", b"null", b"{", b"}", b"[]", b"\xff\xfe", b"\xe9", b"\t", b"\n", b'"_id": null',
                            b'{"_id": 1.5, "text": "x"}', b'{"_id": "a", "text": {"b": 1}}', b"nan", b"inf", b"-1",
                            b"1e309", b"\x00", b'"', b"\xef\xbb\xbf"])

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(name=st.sampled_from(sorted(base)), cut=st.integers(0, 200), piece=junk, raw=st.binary(max_size=40),
           use_raw=st.booleans())
    def fuzz(name, cut, piece, raw, use_raw):
        data = base[name]
        cut = min(cut, len(data))
        mutated = data[:cut] + (raw if use_raw else piece) + data[cut:]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(mutated)
            try:
                readers[name](path)
            except DataError as err:
                assert str(path) in str(err)

    fuzz()


# ------------------------------------------------------------------------------------------ cache integrity
def _dense(cache: Path, encoder):
    from retrievers.dense import DenseRetriever

    return DenseRetriever(encoder=encoder, cache_dir=str(cache))


def _chunks():
    from chunkers import Document, NoChunker

    return [c for d in CORPUS for c in NoChunker().chunk(Document(d["_id"], d["title"], d["text"]))]


def test_corrupt_embeddings_are_detected_quarantined_and_recomputed(tmp_path, capsys):

    from chunkers import Query
    from fakes import CountingEncoder

    qs = [Query(q["_id"], q["text"]) for q in QUERIES]
    first = _dense(tmp_path, CountingEncoder())
    first.index(_chunks())
    good = first.search(qs, top_k=3)
    (entry,) = list((tmp_path / "embeddings").glob("[0-9a-f]*"))
    emb = entry / "embeddings.npy"
    data = bytearray(emb.read_bytes())
    third = len(data) // 3
    data[-third:] = bytes(third)  # zero the last third, same size
    emb.write_bytes(bytes(data))
    enc = CountingEncoder()
    again = _dense(tmp_path, enc)
    again.index(_chunks())
    err = capsys.readouterr().err
    assert "is corrupt: file embeddings.npy does not match its checksum" in err and "recomputing" in err
    assert enc.texts == len(CORPUS)  # re-encoded, not served from the corrupt entry
    assert again.search(qs, top_k=3) == good
    quarantined = list((tmp_path / ".quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith("embeddings-")
    # a truncated file: detected by its size, recomputed, no traceback
    (entry2,) = list((tmp_path / "embeddings").glob("[0-9a-f]*"))
    with open(entry2 / "embeddings.npy", "r+b") as fh:
        fh.truncate(100)
    enc3 = CountingEncoder()
    third_run = _dense(tmp_path, enc3)
    third_run.index(_chunks())
    assert "has 100 bytes" in capsys.readouterr().err and enc3.texts == len(CORPUS)
    assert third_run.search(qs, top_k=3) == good


def test_runs_key_on_the_embeddings_checksum(tmp_path):
    from fakes import CountingEncoder

    a = _dense(tmp_path, CountingEncoder())
    a.index(_chunks())
    (entry,) = list((tmp_path / "embeddings").glob("[0-9a-f]*"))
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["files"]["embeddings.npy"]["sha256"] == a._emb_sum
    assert manifest["files"]["embeddings.npy"]["shape"] == [3, 64]


def test_corrupt_json_run_entry_is_quarantined(tmp_path, capsys):
    from retrievers.cache import Cache

    c = Cache(tmp_path)
    c.put("runs", "k" * 32, lambda f: (f / "run.json").write_text('{"q": {"d": 1.0}}'), {"what": "test"})
    assert Cache(tmp_path).load_json("runs", "k" * 32, "run.json") == {"q": {"d": 1.0}}
    (tmp_path / "runs" / ("k" * 32) / "run.json").write_text('{"q": {"d": 2.0}}')  # same size, other content
    fresh = Cache(tmp_path)
    assert fresh.load_json("runs", "k" * 32, "run.json") is None and fresh.quarantined == 1
    assert "runs/" + "k" * 32 + " is corrupt" in capsys.readouterr().err


def test_entries_without_checksums_get_them_on_first_read(tmp_path):
    from retrievers.cache import Cache

    entry = tmp_path / "runs" / ("a" * 32)
    entry.mkdir(parents=True)
    (entry / "run.json").write_text("{}")
    (entry / "manifest.json").write_text(json.dumps({"kind": "runs"}))
    assert Cache(tmp_path).get("runs", "a" * 32) == entry
    assert json.loads((entry / "manifest.json").read_text())["files"]["run.json"]["bytes"] == 2


def test_leftovers_of_dead_processes_are_cleaned(tmp_path):
    from retrievers import cache as cache_mod
    from retrievers.cache import Cache

    kind = tmp_path / "embeddings"
    kind.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = kind / f".tmp-abcdefgh-{cache_mod._HOST}-{os.getpid()}-x1"
    gone = kind / f".tmp-abcdefgh-{cache_mod._HOST}-{dead.pid}-x2"
    other_host = kind / f".tmp-abcdefgh-ffffff-{dead.pid}-x3"
    for d in (mine, gone, other_host):
        d.mkdir()
    old_lock = kind / ".deadbeef.lock"
    new_lock = kind / ".cafebabe.lock"
    old_lock.touch()
    new_lock.touch()
    os.utime(old_lock, (time.time() - 7200, time.time() - 7200))
    cache_mod._SWEPT.discard(str(kind))
    Cache(tmp_path).get("embeddings", "0" * 32)
    assert mine.exists() and not gone.exists() and other_host.exists()
    assert not old_lock.exists() and new_lock.exists()


# ------------------------------------------------------------------------------------------ signals
@pytest.mark.slow
@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signals_end_the_run_as_killed_without_a_traceback(tmp_path, sig, code, word):
    db = tmp_path / "m.db"
    proc = subprocess.Popen([RBENCH, f"tracking.uri=sqlite:///{db}", f"tracking.artifact_root={tmp_path}/art",
                             f"cache.dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/h"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    status = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        try:
            rows = sqlite3.connect(db).execute("select status from runs").fetchall()
        except sqlite3.Error:
            continue
        if rows and rows[0][0] == "RUNNING":
            status = "RUNNING"
            break
    assert status == "RUNNING", "the run never started"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    (run_id,) = sqlite3.connect(db).execute("select run_uuid from runs").fetchone()
    assert [line for line in err.splitlines() if line.startswith("rbench:")] == \
        [f"rbench: {word} ({'SIGTERM' if code == 143 else 'Ctrl-C'}); MLflow run {run_id} is marked KILLED"]  # #24: names
    # the run; #36: and claims no resume from encoder shards for a BM25 run, which encodes nothing
    assert sqlite3.connect(db).execute("select status from runs").fetchall() == [("KILLED",)]


@pytest.mark.parametrize("sig,kind", [("SIGTERM", "Terminated"), ("SIGINT", "KeyboardInterrupt")])
def test_a_signal_landing_in_a_finaliser_is_not_swallowed(sig, kind):
    """Python prints "Exception ignored" for an exception raised inside __del__ or a weakref callback and goes
    on; a Ctrl-C that lands while SQLAlchemy collects an object must still stop the run (it once exited 0)."""
    code = f"""
import signal
import time
from benchmarks.run.signals import _on_signal, install_signal_handlers
install_signal_handlers()

class Collected:
    def __del__(self):
        _on_signal(signal.{sig}, None)

try:
    Collected()
    deadline = time.time() + 5
    while time.time() < deadline:
        pass
    print("went on")
except KeyboardInterrupt as err:
    print("stopped by", type(err).__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"stopped by {kind}", done.stdout + done.stderr
    assert "Exception ignored" not in done.stderr


def _interrupt_migrations(monkeypatch):
    """Ctrl-C while MLflow migrates a new store, just after a migration created a table (SQLite commits DDL
    at once, the version stamp is rolled back: the state a real interrupted first run left)."""
    from alembic.ddl.impl import DefaultImpl

    original = DefaultImpl.create_table

    def create_then_interrupt(self, table, **kw):
        original(self, table, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(DefaultImpl, "create_table", create_then_interrupt)


def _interrupted_first_open(tmp_path, monkeypatch, open_store):
    """``open_store(uri)`` creates a new store and is interrupted inside one of MLflow's migrations."""
    store = tmp_path / "m.db"
    uri = f"sqlite:///{store}"
    with monkeypatch.context() as patch:
        _interrupt_migrations(patch)
        with pytest.raises(KeyboardInterrupt):
            open_store(uri)
    return store, uri


def test_an_interrupted_store_creation_leaves_no_store(tmp_path, monkeypatch):
    from benchmarks.tracking.tracker import Tracker

    store, uri = _interrupted_first_open(
        tmp_path, monkeypatch, lambda uri: Tracker(uri=uri, experiment="e", artifact_root=str(tmp_path / "art")).client)
    assert not store.exists()
    run_id = Tracker(uri=uri, experiment="e", artifact_root=str(tmp_path / "art")).start()
    assert sqlite3.connect(store).execute("select run_uuid from runs").fetchall() == [(run_id,)]
    assert not list(tmp_path.glob(".m.db.part-*"))


def _half_created_store(tmp_path, monkeypatch):
    """What MLflow's own creation (and rbench before ``create_store``) left behind after an interrupt."""
    from mlflow.tracking import MlflowClient

    return _interrupted_first_open(tmp_path, monkeypatch, lambda uri: MlflowClient(tracking_uri=uri))


def test_a_half_created_store_without_runs_is_created_again(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    from benchmarks.tracking.tracker import Tracker

    store, uri = _half_created_store(tmp_path, monkeypatch)
    with pytest.raises(Exception, match="sqlite3.OperationalError"):
        MlflowClient(tracking_uri=uri)  # every later run failed here
    run_id = Tracker(uri=uri, experiment="e", artifact_root=str(tmp_path / "art")).start()
    assert sqlite3.connect(store).execute("select run_uuid from runs").fetchall() == [(run_id,)]
    kept = list(tmp_path.glob("m.db.incomplete-*"))
    assert len(kept) == 1 and "half-created" in capsys.readouterr().err


def test_a_broken_store_that_holds_runs_is_left_alone(tmp_path, monkeypatch):
    from benchmarks.tracking.tracker import Tracker

    store, uri = _half_created_store(tmp_path, monkeypatch)
    with sqlite3.connect(store) as con:
        con.execute("insert into runs (run_uuid, experiment_id, lifecycle_stage) values ('r1', 0, 'active')")
    before = store.read_bytes()
    with pytest.raises(Exception, match="sqlite3.OperationalError"):
        Tracker(uri=uri, experiment="e", artifact_root=str(tmp_path / "art")).start()
    assert store.read_bytes() == before and not list(tmp_path.glob("m.db.incomplete-*"))


# ------------------------------------------------------------------------------------------ untrusted artifacts
def test_audit_never_instantiates_a_foreign_target(tmp_path, capsys):
    from omegaconf import OmegaConf

    from benchmarks.audit import check_stored_config
    from benchmarks.errors import ConfigError

    victim = tmp_path / "victim.txt"
    cfg = OmegaConf.load(ROOT / "conf" / "config.yaml")
    cfg = OmegaConf.create({"dataset": {"_target_": "shutil.copyfile", "src": str(ROOT / "README.md"), "dst": str(victim)},
                            "chunker": {"_target_": "chunkers.base.NoChunker"}})
    with pytest.raises(ConfigError, match="dataset._target_: shutil.copyfile"):
        check_stored_config(cfg, "r1")
    assert not victim.exists()
    check_stored_config(OmegaConf.create({"retriever": {"_target_": "retrievers.bm25.BM25Retriever"}}), "r2")
    with pytest.raises(ConfigError, match="_args_"):
        check_stored_config(OmegaConf.create({"x": {"_target_": "retrievers.bm25.BM25Retriever", "_args_": [1]}}), "r3")


# ------------------------------------------------------------------------------------------ secrets
class _Redirector:
    """A local server that answers every POST with a redirect to ``target``."""

    def __init__(self, target: str, code: int = 307):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.auth.append(self.headers.get("Authorization"))
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(code)
                self.send_header("Location", target + self.path.split("/v1", 1)[-1])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class _Recorder:
    """A local server that records the Authorization header of every request (any method) and answers with a
    chat-completions payload."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                outer.auth.append(self.headers.get("Authorization"))
                self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                payload = json.dumps({"choices": [{"message": {"content": '["a", "b"]'}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("code", [301, 302, 303])
def test_llm_key_is_not_forwarded_to_another_origin_on_redirect(tmp_path, monkeypatch, code):
    from test_llm import make

    monkeypatch.setenv("RBENCH_TEST_KEY", "sk-secret-redirect")
    final = _Recorder()
    hop = _Redirector(final.url, code)
    try:
        assert make(hop.url, tmp_path, retries=0).decompose("question?") == ["a", "b"]  # the redirect was followed
        assert hop.auth == ["Bearer sk-secret-redirect"]  # the configured endpoint gets the key
        assert final.auth == [None]  # another port is another origin: the key is not sent there
    finally:
        hop.server.shutdown()
        final.server.shutdown()


def test_plain_http_to_a_remote_host_warns(tmp_path, capsys):
    from test_llm import make

    make("http://llm.example.com/v1", tmp_path)
    assert "plain http to a non-loopback host" in capsys.readouterr().err
    make("http://127.0.0.1:9/v1", tmp_path)
    make("https://llm.example.com/v1", tmp_path)
    assert "plain http" not in capsys.readouterr().err


def test_no_secret_in_params_tags_artifacts_caches_or_logs(endpoint, tmp_path, monkeypatch, capsys):  # noqa: F811
    secret = "sk-rbench-secret-4f1c9e"
    monkeypatch.setenv("RBENCH_TEST_KEY", secret)
    ep = endpoint([(200, '["annual leave", "sick leave"]', 0)])
    store = tmp_path / "s"
    code, err = rbench(["decomposer=llm", f"decomposer.base_url={ep.url}", "decomposer.api_key_env=RBENCH_TEST_KEY",
                        "dataset.limit=3"], capsys, store)
    assert code == 0, err
    assert ep.requests and all(r["auth"] == f"Bearer {secret}" for r in ep.requests)
    hits = []
    for path in store.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            hits.append(str(path))
    assert hits == [] and secret not in err
    assert (store / "m.db").is_file() and list((store / "art").rglob("config.yaml"))  # the places searched exist


@pytest.mark.slow
def test_no_third_party_chatter_unless_verbose(tmp_path):
    """#14: a run prints its own output; library INFO lines only with hydra.verbose=true."""
    common = [f"tracking.artifact_root={tmp_path}/art", f"cache.dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/h",
              "dataset.limit=3"]
    env = {k: v for k, v in os.environ.items()  # as a user's shell has it, not as other tests left this process
           if k not in ("MLFLOW_LOGGING_LEVEL", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    quiet = subprocess.run([RBENCH, f"tracking.uri=sqlite:///{tmp_path}/a.db", *common], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stderr and "Creating initial MLflow database tables" not in quiet.stderr + quiet.stdout
    assert "rbench: chunker=none + retriever=bm25" in quiet.stdout
    loud = subprocess.run([RBENCH, f"tracking.uri=sqlite:///{tmp_path}/b.db", *common, "hydra.verbose=true"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert loud.returncode == 0 and "Creating initial MLflow database tables" in loud.stderr + loud.stdout


def test_a_presets_own_sweep_gives_the_progress_its_total(monkeypatch):
    """``rbench -m experiment=handbook`` sweeps in the preset's yaml (hydra.sweeper.params): the progress line
    knows its 8 points (it said 'sweep point 3/?'), and every point is checked before the first runs."""
    from benchmarks.run.precheck import precheck

    monkeypatch.delenv("RBENCH_SWEEP_TOTAL", raising=False)
    assert precheck(["-m", "experiment=handbook"]) is None
    assert os.environ["RBENCH_SWEEP_TOTAL"] == "8"
    assert precheck(["-m", "experiment=handbook", "retriever=bm25"]) is None  # the command line wins, as in Hydra
    assert os.environ["RBENCH_SWEEP_TOTAL"] == "4"


@pytest.mark.slow
def test_a_warm_dense_run_prints_no_info_lines(tmp_path):
    """#24: the cache hit of a warm dense run is a debug line, shown with RBENCH_VERBOSE=1 only."""
    common = [RBENCH, "retriever=dense_static", f"tracking.uri=sqlite:///{tmp_path}/a.db",
              f"tracking.artifact_root={tmp_path}/art", f"cache.dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/h",
              "dataset.limit=3", "rerun=true"]
    env = {k: v for k, v in os.environ.items() if k != "RBENCH_VERBOSE"}
    first = subprocess.run(common, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    warm = subprocess.run(common, capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env)
    assert warm.returncode == 0 and "[INFO]" not in warm.stderr + warm.stdout, warm.stderr
    loud = subprocess.run(common, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**env, "RBENCH_VERBOSE": "1"})
    assert "chunk embeddings from cache" in loud.stderr + loud.stdout


def test_info_lines_of_a_library_not_named_are_dropped_too():
    """CI's lowest set: model2vec 0.7 logs "No cached model found" at INFO from a logger the quiet list did not name.
    Any library's INFO line is dropped at the handlers; the project's own INFO and everyone's warnings pass."""
    import io
    import logging

    from benchmarks import logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        logs.quiet_third_party(False)
        logs.quiet_third_party(False)  # twice: one filter, not two
        assert sum(isinstance(f, logs._OwnInfoOnly) for f in handler.filters) == 1
        logging.getLogger("some_unnamed_library.hf_utils").info("no cached model found")
        logging.getLogger("benchmarks.run.runner").info("own line")
        logging.getLogger("some_unnamed_library").warning("a real warning")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    printed = stream.getvalue()
    assert "no cached model found" not in printed
    assert "own line" in printed and "a real warning" in printed
