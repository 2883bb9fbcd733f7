"""End to end: a run logs the contract's metrics, params, tags and artifacts; a failed run is FAILED."""

import csv
import json
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.evaluation.metrics import metric_names
from benchmarks.run.runner import run_experiment
from benchmarks.evaluation.trec import read_run
from conftest import TINY_CORPUS, TINY_QRELS, TINY_QUERIES, write_beir
from test_config import RBENCH, compose_cfg
from benchmarks.tracking.store import download_artifact
from benchmarks.tracking.layout import contract_metrics


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "artifacts")


def runs_of(uri, experiment):
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def test_enterprise_run_logs_contract(store, tmp_path):
    uri, art = store
    cfg = compose_cfg([f"tracking.uri={uri}", f"tracking.artifact_root={art}", "tracking.experiment=t",
                       "dataset.tune_split=train", "metrics.k=[1,10,100]"])
    ndcg = run_experiment(cfg).objective
    client, runs = runs_of(uri, "t")
    (run,) = runs
    assert run.info.status == "FINISHED"
    m = contract_metrics(run.data.metrics)
    for name in metric_names([1, 10, 100]) + metric_names([1, 10, 100], prefix="train_"):
        assert name in m, name
    assert m["ndcg_at_10"] == round(ndcg, 4)  # the store holds four places; the run returns the exact value
    assert run.data.params["retriever.k1"] == "0.9" and run.data.params["dataset.seed"] == "0"
    for tag in ("dataset_fingerprint", "config_fingerprint", "git_commit"):
        assert run.data.tags.get(tag), tag
    versions = json.loads(run.data.tags["versions"])
    assert versions["ranx"] and versions["bm25s"] and not any(t.startswith("version.") for t in run.data.tags)
    local = Path(download_artifact(client, run.info.run_id, "", str(tmp_path / "dl")))
    assert {"run.trec", "qrels.trec", "per_query.csv", "config.yaml", "summary.json", "run_train.trec"} <= {
        p.name for p in local.iterdir()}
    rows = list(csv.DictReader(open(local / "per_query.csv")))
    test_rows = [r for r in rows if r["split"] == "test"]
    assert len(test_rows) == m["queries_scored"]
    assert {r["label"] for r in test_rows} == {"chunk_boundary", "exact_term", "multi_hop", "stale_version", "simple"}
    mean = sum(float(r["ndcg_at_10"]) for r in test_rows) / len(test_rows)
    assert mean == pytest.approx(m["ndcg_at_10"], abs=6e-5)
    run_file = read_run(local / "run.trec")
    assert len(run_file) == m["queries_scored"] and all(len(h) <= 100 for h in run_file.values())


def test_same_config_same_fingerprint_different_output_path(store, tmp_path):
    uri, art = store
    base = ["dataset.limit=5", "tracking.experiment=fp", "metrics.k=[10]", "top_k=10"]
    run_experiment(compose_cfg(base + [f"tracking.uri={uri}", f"tracking.artifact_root={art}"]))
    run_experiment(compose_cfg(base + [f"tracking.uri={uri}", f"tracking.artifact_root={art}2", "rerun=true"]))
    run_experiment(compose_cfg(base + [f"tracking.uri={uri}", f"tracking.artifact_root={art}", "retriever.k1=1.5"]))
    _, runs = runs_of(uri, "fp")
    fps = sorted(r.data.tags["config_fingerprint"] for r in runs)
    assert len(fps) == 3 and len(set(fps)) == 2  # another artifact root is the same point


def test_beir_folder_with_spaces_via_path(store, tmp_path):
    uri, art = store
    folder = write_beir(tmp_path / "any-beir", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    cfg = compose_cfg(["dataset=beir", f"dataset.path={folder}", f"tracking.uri={uri}",
                       f"tracking.artifact_root={art}", "tracking.experiment=tiny", "metrics.k=[1,2]", "top_k=5"])
    run_experiment(cfg)
    client, (run,) = runs_of(uri, "tiny")
    local = Path(download_artifact(client, run.info.run_id, "run.trec", str(tmp_path / "dl")))
    assert "doc with spaces" in read_run(local)["q2"]
    assert run.data.metrics["stats/queries_scored"] == 2
    # named after what ran and on what (the folder, not the default dataset.name); the dataset is an input;
    # the experiment opens on runs in MLflow 3's UI
    assert run.info.run_name == "bm25 · any-beir" and run.data.tags["dataset"] == "any-beir"
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.name == "any-beir [test]" and inp.dataset.digest == run.data.tags["dataset_fingerprint"][:36]
    assert str(folder) in inp.dataset.source
    assert client.get_experiment_by_name("tiny").tags["mlflow.experimentKind"] == "custom_model_development"


def test_run_names():
    from benchmarks.tracking.tracker import run_name

    base = {"retriever": "hybrid", "chunker": "none", "decomposer": "none", "versions": "ignore", "reranker": "none"}
    assert run_name(None, base, "scifact") == "hybrid · scifact"
    assert run_name(None, {**base, "decomposer": "iterative_links", "reranker": "bi_encoder", "chunker": "auto"},
                    "hotpotqa-dev500") == "hybrid + iterative_links + bi_encoder + chunks:auto · hotpotqa-dev500"
    assert run_name(None, {**base, "router": "rules", "versions": "decay"}, "e") == "router:rules + decay · e"
    assert run_name("{retriever}@{dataset}", base, "cisi") == "hybrid@cisi"
    assert run_name("baseline", base, "x") == "baseline"
    assert run_name("baseline · {pipeline} · {dataset}", {**base, "chunker": "auto"}, "x") == "baseline · hybrid + chunks:auto · x"
    # a sweep point's own settings lead: sibling runs differ at the start of their names, not after a cut
    assert run_name(None, base, "e", varied=["retriever.weights=[0.6,0.4]"]) == "weights 0.6/0.4 · hybrid · e"
    # in plain words (#36): a dict-valued sweep point by its entries, a list by its values
    assert run_name(None, base, "enterprise", varied=["point={fusion:wsum,weights:[0.7,0.3]}"]) == \
        "fusion wsum 0.7/0.3 · hybrid · enterprise"
    assert run_name(None, base, "e", varied=["point={fusion:rrf,rrf_k:60}"]) == "fusion rrf rrf_k 60 · hybrid · e"
    # a nested node's key by its own name; an index's kind by its node's, a group option chosen for a node by its group
    assert run_name(None, base, "e", varied=["retriever.retrievers.dense.index.hnsw_ef_search=64",
                                             "retriever.retrievers.dense.index.kind=hnsw",
                                             "encoder@retriever.retrievers.dense.encoder=static"]) == \
        "hnsw_ef_search 64, index hnsw, encoder static · hybrid · e"
    # a sweep's constant dataset.name is the dataset the name ends with: not said twice (another setting still is)
    assert run_name(None, base, "scifact", varied=["point={fusion:wsum,weights:[0.1,0.9]}", "dataset.name=scifact"]) == \
        "fusion wsum 0.1/0.9 · hybrid · scifact"
    assert run_name(None, base, "scifact", varied=["dataset.name=scifact"]) == "hybrid · scifact"
    assert run_name(None, base, "scifact", varied=["dataset.split=train"]) == "split train · hybrid · scifact"


def test_bad_input_marks_run_failed_and_logs_no_artifacts(tmp_path):
    folder = write_beir(tmp_path / "bad", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    with open(folder / "corpus.jsonl", "a") as fh:
        fh.write("{not json}\n")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = subprocess.run(
        [RBENCH, "dataset=beir", f"dataset.path={folder}", f"tracking.uri={uri}",
         f"tracking.artifact_root={tmp_path}/art", "tracking.experiment=bad"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert out.returncode == 2
    assert f"{folder}/corpus.jsonl:6: malformed JSON" in out.stderr
    # bad data stops the point before a run exists (#24): the experiment holds no FAILED run for a typo in a file
    client, runs = runs_of(uri, "bad")
    assert runs == [] and "MLflow run" not in out.stderr


def test_a_failure_after_loading_is_a_failed_run_labelled_with_the_dataset(tmp_path, monkeypatch):
    """Anything that breaks once the run exists is marked FAILED, logs no artifacts and is labelled with the
    dataset's name known before loading (the folder, not the yaml's default)."""
    import benchmarks.run.runner as runner

    folder = write_beir(tmp_path / "mine", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def broken(*args, **kwargs):
        raise RuntimeError("the index could not be built")

    monkeypatch.setattr(runner, "retrieve", broken)
    with pytest.raises(RuntimeError):
        run_experiment(compose_cfg(["dataset=beir", f"dataset.path={folder}", f"tracking.uri={uri}",
                                    f"tracking.artifact_root={tmp_path}/art", "tracking.experiment=bad"]))
    client, (run,) = runs_of(uri, "bad")
    assert run.info.status == "FAILED" and client.list_artifacts(run.info.run_id) == []
    assert run.data.tags["dataset"] == "mine" and "· mine" in run.data.tags["mlflow.runName"], run.data.tags


def test_every_loader_names_its_dataset_before_loading(tmp_path):
    from benchmarks.datasets.beir import BeirLoader
    from benchmarks.datasets.enterprise import EnterpriseLoader
    from benchmarks.datasets.files import FilesLoader
    from benchmarks.datasets.multihop import HotpotQALoader

    folder = write_beir(tmp_path / "my set", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)
    beir = BeirLoader(name="scifact", path=str(folder))
    assert beir.dataset_name() == "my set" == beir.load().name
    assert EnterpriseLoader(seed=3).dataset_name() == "enterprise-seed3" == EnterpriseLoader(seed=3, limit=2).load().name
    assert BeirLoader(name="nfcorpus").dataset_name() == "nfcorpus"  # not on disk: named without a download
    assert HotpotQALoader(path=str(tmp_path / "absent.json")).dataset_name() == "hotpotqa"
    (tmp_path / "docs").mkdir()
    assert FilesLoader(path=str(tmp_path / "docs")).dataset_name() == "docs"


def test_run_name_templates_read_config_values_and_sweep_points_differ():
    from benchmarks.tracking.tracker import run_name

    base = {"retriever": "bm25", "router": "none", "decomposer": "none", "versions": "ignore", "reranker": "none",
            "chunker": "none"}
    assert run_name("{retriever} k1={retriever.k1} · {dataset}", base, "scifact",
                    values={"retriever.k1": 1.2}) == "bm25 k1=1.2 · scifact"
    assert run_name("{nope}", base, "x") == "{nope}"  # an unknown key is left as written
    assert run_name(None, base, "scifact", varied=["retriever.k1=0.9"]) == "k1 0.9 · bm25 · scifact"
    assert run_name(None, base, "s", varied=[f"a{i}=1" for i in range(6)]).startswith("a0 1, a1 1, a2 1, a3 1 … · bm25")


def test_every_dataset_option_builds_a_loader():
    """Every ``conf/dataset/*.yaml`` builds an object with ``dataset_name()`` and ``load()`` (the Loader protocol)."""
    from hydra.utils import instantiate

    from benchmarks.datasets.base import Loader
    from benchmarks.paths import CONF_DIR

    required = {"files": ["dataset.path=docs"], "irds": ["dataset.id=beir/scifact/test"], "musique": ["dataset.path=m.jsonl"]}
    for yaml in sorted((CONF_DIR / "dataset").glob("*.yaml")):
        cfg = compose_cfg([f"dataset={yaml.stem}", *required.get(yaml.stem, [])])
        loader = instantiate(cfg.dataset)
        assert isinstance(loader, Loader), yaml.stem
        assert loader.dataset_name(), yaml.stem
