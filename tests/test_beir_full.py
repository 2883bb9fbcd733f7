"""#23 point 4: ``rbench experiment=beir_full`` — the plan first, what cannot be fetched said and skipped, a
collection fetched from a mirror (a small one registered locally, served over HTTP here), a group collection
averaged over its members, one table with the published figures beside each cell, and a resumable re-run."""

import functools

import pytest
import http.server
import json
import shutil
import subprocess
import threading
import zipfile

from conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir
from test_config import RBENCH

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command


def test_beir_full_plans_fetches_runs_and_tabulates(tmp_path):
    data = tmp_path / "data"
    write_beir(data / "beir" / "tinyset", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    for forum in ("a", "b"):  # a group: a folder of BEIR folders, averaged
        write_beir(data / "beir" / "groupset" / forum, TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    mirror = tmp_path / "mirror"
    write_beir(mirror / "src" / "served", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    with zipfile.ZipFile(mirror / "served.zip", "w") as zf:
        for path in (mirror / "src" / "served").rglob("*"):
            zf.write(path, path.relative_to(mirror / "src"))
    shutil.rmtree(mirror / "src")
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"_sources": {"paper": "a paper"}, "collections": {
        "tinyset": {"passages": 5, "queries": 3, "split": "test", "public": True, "bm25_beir": 0.5, "bm25_pyserini": 0.6},
        "groupset": {"passages": 10, "queries": 6, "split": "test", "public": True},
        "served": {"passages": 5, "queries": 3, "split": "test", "public": True},
        "licensed": {"passages": 9, "queries": 1, "split": "test", "public": False}}}))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    args = [RBENCH, "experiment=beir_full", f"data_dir={data}", f"beir_full.registry={registry}",
            "beir_full.systems=[bm25,dense_static]", f"beir_full.url='http://127.0.0.1:{server.server_port}/{{name}}.zip'",
            f"beir_full.out={tmp_path}/out/beir_full", f"tracking.uri=sqlite:///{tmp_path}/m.db",
            f"tracking.artifact_root={tmp_path}/a", f"cache.dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/h",
            "metrics.k=[1,10]", "top_k=10"]
    try:
        first = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    finally:
        server.shutdown()
    out = first.stdout
    assert first.returncode == 0, first.stderr[-3000:]
    # the plan comes before any run, with sizes, status and an encode estimate
    plan = out[: out.index("MLflow run")]
    for line in ("tinyset", "groupset", "served", "licensed"):
        assert line in plan
    assert "to fetch" in plan and "not redistributable" in plan and "encode rate:" in plan
    assert (data / "beir" / "served" / "corpus.jsonl").is_file()  # fetched from the mirror
    table = (tmp_path / "out" / "beir_full.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tinyset "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:5] == ["0.500", "0.600"] and cells[2] != "—"  # ours beside BEIR's and Pyserini's
    assert "| licensed | not redistributable |" in table
    assert next(line for line in table.splitlines() if line.startswith("| groupset ")).count("—") >= 2
    # resumable: a second run with the mirror gone re-runs nothing and prints the same table
    again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0 and again.stdout.count("skipped — experiment") == 8  # 4 datasets x 2 systems
    assert (tmp_path / "out" / "beir_full.md").read_text() == table


def test_a_down_mirror_is_said_once_and_the_rest_runs(tmp_path):
    data = tmp_path / "data"
    write_beir(data / "beir" / "tinyset", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    write_beir(data / "beir" / "unlisted", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)  # on disk, not in the registry
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"collections": {
        "tinyset": {"passages": 5, "queries": 3, "split": "test", "public": True},
        "faraway": {"passages": 5, "queries": 3, "split": "test", "public": True},
        "farther": {"passages": 5, "queries": 3, "split": "test", "public": True}}}))
    res = subprocess.run([RBENCH, "experiment=beir_full", f"data_dir={data}", f"beir_full.registry={registry}",
                          "beir_full.systems=[bm25]", "beir_full.url='http://127.0.0.1:9/{name}.zip'",
                          f"beir_full.out={tmp_path}/out/b", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                          f"tracking.artifact_root={tmp_path}/a", f"cache.dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/h"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "could not fetch 2 collection(s): faraway, farther" in res.stdout and res.stdout.count("unreachable (") == 1
    table = (tmp_path / "out" / "b.md").read_text()
    assert "| tinyset | run |" in table and "| unlisted | run |" in table and "| faraway | not fetched |" in table
    assert "not in the registry" in res.stdout and "unlisted" in res.stdout[: res.stdout.index("could not fetch")]


def test_a_retriever_override_goes_to_the_systems_that_have_its_key():
    """``retriever.k1=1.0`` on the command line is a BM25 setting: it reaches bm25 and not dense_static, while
    ``top_k`` reaches both; a key no system has, a per-system list for a system not run, or a per-system
    override that does not compose is a config error before anything runs."""
    import pytest
    from hydra import initialize_config_dir

    from benchmarks.beir_full import point_overrides
    from benchmarks.errors import ConfigError
    from test_config import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        got = point_overrides(["bm25", "dense_static"], ["retriever.k1=1.0", "top_k=50"],
                              {"dense_static": ["retriever.encoder.batch_size=16"]})
        assert got == {"bm25": ["retriever.k1=1.0", "top_k=50"],
                       "dense_static": ["top_k=50", "retriever.encoder.batch_size=16"]}
        with pytest.raises(ConfigError, match=r"retriever.k1: no system of beir_full.systems \(dense_static\)"):
            point_overrides(["dense_static"], ["retriever.k1=1.0"], {})
        with pytest.raises(ConfigError, match=r"retriever=dense: beir_full runs each retriever of beir_full.systems"):
            point_overrides(["bm25", "dense_static"], ["retriever=dense"], {})  # would make every system dense
        with pytest.raises(ConfigError, match="beir_full.per_system: dense is not in beir_full.systems"):
            point_overrides(["bm25"], [], {"dense": ["retriever.encoder.batch_size=16"]})
        with pytest.raises(ConfigError, match="dense_static with retriever.no_such_key=1"):
            point_overrides(["dense_static"], [], {"dense_static": ["retriever.no_such_key=1"]})


def test_a_malformed_registry_names_the_file(tmp_path):
    registry = tmp_path / "registry.json"
    registry.write_text('{"collections": [1, 2')  # cut short
    res = subprocess.run([RBENCH, "experiment=beir_full", f"data_dir={tmp_path}", f"beir_full.registry={registry}",
                          "beir_full.systems=[bm25]", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                          f"hydra.run.dir={tmp_path}/h"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"{registry}: beir_full.registry: cannot read the collections registry" in res.stderr
    registry.write_text('{"collections": ["scifact"]}')  # valid JSON, wrong shape
    res = subprocess.run(res.args, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr and str(registry) in res.stderr


def test_the_shipped_registry_is_whole():
    """Every collection the shipped registry lists has what the plan and the table read (sizes, split, public),
    each published figure is an nDCG@10 in (0, 1), and every figure column names a source."""
    from benchmarks.beir_full import load_registry
    from benchmarks.resolvers import package_data

    registry = load_registry(package_data("beir_collections.json"))
    assert len(registry["collections"]) >= 18
    for name, info in registry["collections"].items():
        assert info["passages"] > 0 and info["queries"] > 0 and info["split"] in ("test", "dev"), name
        assert isinstance(info["public"], bool), name
        for key, value in info.items():
            if key.startswith(("bm25_", "dense_")):
                assert 0 < value < 1, (name, key)
                assert key.split("_", 1)[1] in registry["sources"], (name, key)


def test_a_model_figure_stands_only_beside_that_model():
    """MTEB's MiniLM figure goes beside dense only when dense runs MiniLM; BM25's figures always."""
    from benchmarks.beir_full import figure_for, matrix

    minilm = {"dense_mteb": "sentence-transformers/all-MiniLM-L6-v2"}
    same = figure_for(["bm25", "dense"], {"bm25": None, "dense": "sentence-transformers/all-MiniLM-L6-v2"}, minilm)
    other = figure_for(["bm25", "dense"], {"bm25": None, "dense": "BAAI/bge-small-en-v1.5"}, minilm)
    assert same == {"bm25": [("BEIR", "bm25_beir"), ("Pyserini", "bm25_pyserini")], "dense": [("MTEB", "dense_mteb")]}
    assert other == {"bm25": same["bm25"]}
    rows = [{"name": "c", "status": "on disk", "info": {"bm25_beir": 0.5, "dense_mteb": 0.4}}]
    text, _ = matrix(rows, {("c", "bm25"): [0.6], ("c", "dense"): [0.7]}, ["bm25", "dense"], {}, other)
    assert "dense: MTEB" not in text and "0.400" not in text and "| c | run | 0.600 | 0.500 | — | 0.700 | +0.100 |" in text


def test_collections_on_disk_gzipped_or_hostile(tmp_path):
    """BEIR folders the registry does not list, as users have them: a gzipped corpus (``corpus.jsonl.gz``, as
    BEIR's own zips of some collections ship) is counted in the plan and run; a corpus that is a named pipe does
    not hang the plan or the encode estimate — its run fails naming the pipe, the other runs, the table is
    written and the exit status says a point failed."""
    import gzip
    import os

    data = tmp_path / "data"
    gz = write_beir(data / "beir" / "gzset", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    with gzip.open(gz / "corpus.jsonl.gz", "wb") as fh:
        fh.write((gz / "corpus.jsonl").read_bytes())
    (gz / "corpus.jsonl").unlink()
    pipe = write_beir(data / "beir" / "pipeset", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    (pipe / "corpus.jsonl").unlink()
    os.mkfifo(pipe / "corpus.jsonl")
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"collections": {}}))
    res = subprocess.run([RBENCH, "experiment=beir_full", f"data_dir={data}", f"beir_full.registry={registry}",
                          "beir_full.systems=[bm25,dense_static]", f"beir_full.out={tmp_path}/out/b",
                          f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/a",
                          f"cache.dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/h"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    plan = res.stdout[: res.stdout.index("MLflow run")]
    assert next(line for line in plan.splitlines() if line.strip().startswith("gzset")).split()[1] == str(len(TINY_CORPUS))
    assert "encode rate:" in plan and "passages/s" in plan  # measured on the gzipped corpus, the pipe passed over
    assert "pipeset x bm25 failed, going on" in res.stderr and "named pipe" in res.stderr
    table = (tmp_path / "out" / "b.md").read_text()
    gz_row = [c.strip() for c in next(line for line in table.splitlines() if line.startswith("| gzset ")).strip("|").split("|")]
    # columns: collection, status, bm25 (ours), BEIR, Pyserini, dense_static (ours), gap
    assert gz_row[1] == "run" and gz_row[2] != "—" and gz_row[5] != "—"  # both systems ran on the gzipped corpus
    assert "beir_full: 2 point(s) failed" in res.stderr


def test_an_unknown_collection_or_an_unreadable_folder_is_an_error_before_the_matrix(tmp_path):
    """#35: a misspelt collection, or a collection folder that is a symbolic link loop, used to exit 0; now exit 2
    with one line naming it (and the close name)."""
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "scifact").symlink_to(tmp_path / "beir" / "scifact")  # a loop
    for collections, expected in (("[scifcat]", r"'scifcat' is neither in the registry .* did you mean 'scifact'\?"),
                                  ("[scifact]", r"scifact: .* is a symbolic link that leads nowhere")):
        res = subprocess.run([RBENCH, "experiment=beir_full", f"data_dir={tmp_path}", f"beir_full.collections={collections}",
                              "beir_full.systems=[bm25]", f"tracking.uri=sqlite:///{tmp_path}/m.db", f"hydra.run.dir={tmp_path}/h"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert __import__("re").search(expected, res.stderr), res.stderr[-2000:]


def test_a_failed_point_names_the_key_and_value_that_failed(tmp_path):
    """#35: a per-system override that cannot apply ended in '1 point(s) failed' with the point's reason cut to
    'invalid config value:'; the reason now names the key and the value."""
    write_beir(tmp_path / "beir" / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    res = subprocess.run([RBENCH, "experiment=beir_full", f"data_dir={tmp_path}", "beir_full.collections=[tiny]",
                          "beir_full.systems=[bm25]", '+beir_full.per_system.bm25=["retriever.k1=abc"]',
                          f"beir_full.out={tmp_path}/out/beir_full", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                          f"hydra.run.dir={tmp_path}/h"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "failed: tiny (bm25): invalid config value: retriever.k1: expected a number, got 'abc'" in res.stdout
