"""Collections users already have: ir_datasets ids (dataset=irds) and the BEIR sets on the Hugging Face hub
(dataset=beir dataset.source=hf), both on local files — a collection registered through ir_datasets' own API,
and files in the hub's layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchmarks.errors import ConfigError, DataError

DOCS = [("d1", "Solar panels convert sunlight into electricity."), ("d2", "Wind turbines convert wind into electricity."),
        ("d3", "Coal is burned in power stations.")]
QUERIES = [("q1", "solar panels electricity"), ("q2", "wind turbines"), ("q3", "unjudged")]
QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q2", "d1", 0)]


@pytest.fixture
def irds_collection(tmp_path):
    import ir_datasets

    (tmp_path / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in DOCS), encoding="utf-8")
    (tmp_path / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in QUERIES), encoding="utf-8")
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in QRELS), encoding="utf-8")
    name = f"rbench-test/tiny-{tmp_path.name}"
    ds = ir_datasets.create_dataset(docs_tsv=str(tmp_path / "docs.tsv"), queries_tsv=str(tmp_path / "queries.tsv"),
                                    qrels_trec=str(tmp_path / "qrels.txt"))
    ir_datasets.registry.register(name, ds)
    return name, tmp_path


def test_irds_loader_reads_a_registered_collection(irds_collection):
    from benchmarks.datasets.irds import IrdsLoader

    name, _ = irds_collection
    ds = IrdsLoader(id=name).load()
    assert [d.id for d in ds.corpus] == ["d1", "d2", "d3"] and ds.corpus[1].text == DOCS[1][1]
    assert [q.id for q in ds.queries] == ["q1", "q2"]  # q3 has no judgments: not run, counted
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}} and ds.notes["unjudged_queries_left_out"] == 1
    assert ds.name == name.replace("/", "-") and ds.source == f"ir_datasets:{name}"


def test_irds_runs_through_rbench(irds_collection, tmp_path):
    from benchmarks.api import run

    name, _ = irds_collection
    store = tmp_path / "store"
    out = run(["dataset=irds", f"dataset.id={name}", f"tracking.uri=sqlite:///{store}/m.db",
               f"tracking.artifact_root={store}/art", f"cache.dir={store}/cache"])
    assert out["metrics"]["ndcg_at_10"] == pytest.approx(1.0) and out["metrics"]["queries_scored"] == 2


def test_irds_errors(irds_collection, tmp_path):
    import ir_datasets

    from benchmarks.datasets.irds import IrdsLoader

    name, folder = irds_collection
    with pytest.raises(ConfigError, match="is not an ir_datasets id; did you mean"):
        IrdsLoader(id=name + "x").load()
    with pytest.raises(ConfigError, match="dataset.id: give an ir_datasets id"):
        IrdsLoader(id=None)
    docs_only = f"{name}-docs"
    ir_datasets.registry.register(docs_only, ir_datasets.create_dataset(docs_tsv=str(folder / "docs.tsv")))
    with pytest.raises(ConfigError, match="has no queries or qrels"):
        IrdsLoader(id=docs_only).load()
    bad = folder / "bad-qrels.txt"
    bad.write_text("q1 0 nowhere 1\n", encoding="utf-8")
    unknown = f"{name}-unknown"
    ir_datasets.registry.register(unknown, ir_datasets.create_dataset(
        docs_tsv=str(folder / "docs.tsv"), queries_tsv=str(folder / "queries.tsv"), qrels_trec=str(bad)))
    with pytest.raises(DataError, match="unknown id.*'nowhere'"):
        IrdsLoader(id=unknown).load()
    missing = f"{name}-missing"
    ir_datasets.registry.register(missing, ir_datasets.create_dataset(
        docs_tsv=str(folder / "gone.tsv"), queries_tsv=str(folder / "queries.tsv"), qrels_trec=str(folder / "qrels.txt")))
    with pytest.raises(DataError, match="could not provide.*offline"):
        IrdsLoader(id=missing).load()


def hub_layout(root: Path, name: str = "tiny") -> Path:
    """``<root>/BeIR/<name>/{corpus,queries}.jsonl.gz`` and ``<root>/BeIR/<name>-qrels/test.tsv``, as on the hub."""
    data, qrels = root / "BeIR" / name, root / "BeIR" / f"{name}-qrels"
    data.mkdir(parents=True)
    qrels.mkdir(parents=True)
    with gzip.open(data / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
        for d, t in DOCS:
            fh.write(json.dumps({"_id": d, "title": d.upper(), "text": t, "metadata": {}}) + "\n")
    with gzip.open(data / "queries.jsonl.gz", "wt", encoding="utf-8") as fh:
        for q, t in QUERIES:
            fh.write(json.dumps({"_id": q, "text": t, "metadata": {}}) + "\n")
    (qrels / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in QRELS),
                                    encoding="utf-8")
    return root


def test_hf_source_reads_the_hub_layout(tmp_path):
    from benchmarks.datasets.beir import BeirLoader

    root = hub_layout(tmp_path / "hub")
    ds = BeirLoader(name="tiny", source="hf", hf_root=str(root)).load()
    assert [d.id for d in ds.corpus] == ["d1", "d2", "d3"] and ds.corpus[0].title == "D1"
    assert [q.id for q in ds.queries] == ["q1", "q2"] and ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}}
    assert ds.source == "hf:BeIR/tiny"
    with pytest.raises(DataError, match="no folder for this hub repository"):
        BeirLoader(name="other", source="hf", hf_root=str(root)).load()
    with pytest.raises(DataError, match=r"tiny-qrels/train\.tsv: no qrels for split 'train'; dataset\.split must be one of: test"):
        BeirLoader(name="tiny", source="hf", hf_root=str(root), split="train").load()
    (root / "BeIR" / "tiny-qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnowhere\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match="doc id 'nowhere' is not in"):
        BeirLoader(name="tiny", source="hf", hf_root=str(root)).load()


def test_hf_source_goes_through_the_disk_readers_checks(tmp_path):
    """One reader fed by two sources: the hub's files get the checks a BEIR folder gets — a tuning split, a
    pair judged twice, a malformed line named by file and line, ids read without surrounding spaces."""
    from benchmarks.datasets.beir import BeirLoader

    root = hub_layout(tmp_path / "hub")
    qrels = root / "BeIR" / "tiny-qrels"
    (qrels / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n", encoding="utf-8")
    ds = BeirLoader(name="tiny", source="hf", hf_root=str(root), tune_split="train").load()
    assert ds.tune_qrels == {"q3": {"d3": 1}} and [q.id for q in ds.tune_queries] == ["q3"]
    (qrels / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.tsv:3: query 'q1' judges doc 'd1' 2 here and 1 on line 2"):
        BeirLoader(name="tiny", source="hf", hf_root=str(root)).load()
    (qrels / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t d1 \t1\n", encoding="utf-8")
    assert BeirLoader(name="tiny", source="hf", hf_root=str(root)).load().qrels == {"q1": {"d1": 1}}
    with gzip.open(root / "BeIR" / "tiny" / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "d1", "title": "", "text": "x"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"BeIR/tiny/corpus\.jsonl\.gz:2: malformed JSON"):
        BeirLoader(name="tiny", source="hf", hf_root=str(root)).load()


def test_hf_source_through_rbench(tmp_path):
    from benchmarks.api import run

    root = hub_layout(tmp_path / "hub")
    store = tmp_path / "store"
    out = run(["dataset=beir", "dataset.name=tiny", "dataset.source=hf", f"dataset.hf_root={root}",
               f"tracking.uri=sqlite:///{store}/m.db", f"tracking.artifact_root={store}/art", f"cache.dir={store}/cache"])
    assert out["metrics"]["ndcg_at_10"] == pytest.approx(1.0)


def test_hf_source_offline_is_a_clear_error(tmp_path, monkeypatch):
    import retrievers.infrastructure.hub as hub

    from benchmarks.datasets.beir import BeirLoader

    monkeypatch.setattr(hub, "go_offline_if_unreachable", lambda: False)
    with pytest.raises(DataError, match="hub is unreachable.*dataset.hf_root"):
        BeirLoader(name="scifact", source="hf").load()
