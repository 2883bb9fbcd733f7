"""#24: an MLflow run that reads at a glance, read back from the store: headline metrics at the top level and
the rest grouped, a description, params in the order a person varies them without class paths, the
experiment's runs-table view, the UI URL printed; readers see the contract's names whatever the grouping."""

import json
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.evaluation.metrics import metric_names
from benchmarks.run.runner import run_experiment
from benchmarks.tracking import layout
from benchmarks.tracking.store import load_runs
from test_config import RBENCH, compose_cfg


def test_headline_names_follow_the_configured_ks():
    assert layout.headline([1, 2, 5, 10, 20, 100]) == ["ndcg_at_10", "recall_at_100", "mrr_at_10",
                                                       "evidence_coverage_at_10"]
    assert layout.headline([1, 5]) == ["ndcg_at_5", "recall_at_5", "mrr_at_5", "evidence_coverage_at_5"]
    assert layout.headline([1, 12, 8]) == ["ndcg_at_8", "recall_at_12", "mrr_at_8", "evidence_coverage_at_8"]
    assert layout.headline([1, 10, 100], 1)[0] == "ndcg_at_1"


def test_logged_names_round_trip_to_the_contract():
    heads = layout.headline([1, 10, 100])
    contract = {"ndcg_at_10": 0.5, "ndcg_at_1": 0.25, "train_recall_at_100": 0.9, "span_recall_at_budget": 0.1,
                "time_search_s": 1.5, "retrieval_calls_mean": 2.0, "num_chunks": 7.0, "recall_at_100": 0.8}
    logged = layout.logged_metrics(contract, heads)
    assert list(logged)[:2] == ["ndcg_at_10", "recall_at_100"]  # headline first, in the headline's order
    assert logged["at_k/ndcg_at_1"] == 0.25 and logged["at_k/train_recall_at_100"] == 0.9
    assert logged["at_k/span_recall_at_budget"] == 0.1 and logged["cost/time_search_s"] == 1.5
    assert logged["cost/retrieval_calls_mean"] == 2.0 and logged["stats/num_chunks"] == 7.0
    assert layout.logged_metrics({"ndcg_at_10": 0.885871966}, heads) == {"ndcg_at_10": 0.8859}
    assert layout.contract_metrics(logged) == contract
    assert layout.contract_metrics({"ndcg_at_10": 0.1, "system/cpu": 3}) == {"ndcg_at_10": 0.1}  # older stores


def test_a_run_reads_at_a_glance(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose_cfg([f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/art", "tracking.experiment=glance",
                       "dataset.limit=6", "chunker=fixed_64", "metrics.k=[1,10,100]"])
    result = run_experiment(cfg)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("glance")
    (run,) = client.search_runs([exp.experiment_id])
    m = run.data.metrics
    # the headline measures, then the failure-mode ones this run computed (#36: beside them, not under stats/)
    heads = ["ndcg_at_10", "recall_at_100", "mrr_at_10", "evidence_coverage_at_10"]
    failure = ["span_recall_at_budget", "evidence_split_rate"]  # the first 6 queries ask about no versioned document
    assert "stale_hit_rate" not in result.metrics and layout.failure_heads(result.metrics) == failure
    assert [k for k in m if "/" not in k] == heads + failure
    assert m["span_recall_at_budget"] == round(result.metrics["span_recall_at_budget"], 4)
    assert {k.split("/")[0] for k in m if "/" in k} == {"at_k", "cost", "stats"}
    assert m["ndcg_at_10"] == round(result.metrics["ndcg_at_10"], 4)  # rounded where shown
    assert "at_k/ndcg_at_1" in m and "ndcg_at_1" not in m
    # params: no class paths (they are one tag), and the stage options first
    params = run.data.params
    assert not [k for k in params if k.endswith("_target_")]
    assert json.loads(run.data.tags["components"])["chunker"].startswith("chunkers.")
    assert list(params)[:2] == ["retriever", "chunker"], list(params)[:8]
    # the description names the pipeline and the dataset and shows the headline metrics rounded
    note = run.data.tags["mlflow.note.content"]
    assert "chunker=fixed_64 + retriever=bm25" in note and "enterprise-seed0" in note and "[test]" in note
    assert f"{result.metrics['ndcg_at_10']:.4f}" in note and "nDCG@10" in note and "Recall@100" in note
    # a fixed-width block (MLflow gives table cells no padding): each label above its value, right-aligned
    block = note.split("```")[1].strip("\n").splitlines()
    assert len(block) == 2 and "|" not in note.split("```")[1]
    for name, lab in (("ndcg_at_10", "nDCG@10"), ("span_recall_at_budget", "Span recall@budget"),
                      ("evidence_split_rate", "Split evidence")):
        end = block[0].index(lab) + len(lab)
        assert block[1][:end].endswith(f"{result.metrics[name]:.4f}"), (name, block)
    assert "Lower is better for Split evidence" in note
    # the experiment's runs-table view: pipeline columns, then the headline metrics, best first
    view = json.loads(exp.tags[layout.VIEW_TAG])
    cols = view["selectedColumns"]
    assert cols.index("params.`retriever`") < cols.index("params.`chunker`") < cols.index("metrics.`ndcg_at_10`")
    assert view["orderByKey"] == "metrics.`ndcg_at_10`" and view["orderByAsc"] is False
    metric_cols = [c for c in view["columnOrder"] if c.startswith("metrics.")]
    assert metric_cols == [f"metrics.`{k}`" for k in heads + failure]
    assert view["columnOrder"].index(metric_cols[-1]) < view["columnOrder"].index("params.`retriever`")
    # readers (reports, studies) see the contract's names and the class paths as settings
    _, (rec,) = load_runs(uri, "glance")
    assert set(metric_names([1, 10, 100])) <= set(rec.metrics) and rec.metrics["ndcg_at_1"] == m["at_k/ndcg_at_1"]
    assert rec.setting("chunker._target_") == "chunkers.fixed.FixedTokenChunker" or \
        rec.setting("chunker._target_").startswith("chunkers.")


def test_the_view_keeps_earlier_param_columns():
    first = layout.view_state(["ndcg_at_10"], ["retriever", "retriever.k1"])
    second = json.loads(layout.view_state(["ndcg_at_10"], ["retriever", "chunker"], first))
    assert [c for c in second["selectedColumns"] if c.startswith("params.")] == [
        "params.`retriever`", "params.`chunker`", "params.`retriever.k1`"]
    assert layout.view_state(["ndcg_at_10"], ["retriever"], "not json")  # a hand-edited tag is replaced
    # a run without failure measures keeps the columns an earlier run added, after the headline ones
    spans = layout.view_state(["ndcg_at_10", "stale_hit_rate", "span_recall_at_budget"], ["retriever"])
    plain = json.loads(layout.view_state(["ndcg_at_10"], ["retriever"], spans))
    assert [c for c in plain["selectedColumns"] if c.startswith("metrics.")] == [
        "metrics.`ndcg_at_10`", "metrics.`span_recall_at_budget`", "metrics.`stale_hit_rate`"]


@pytest.mark.slow
def test_rbench_prints_the_ui_urls(tmp_path):
    uri = f"sqlite:///{tmp_path}/m.db"
    out = subprocess.run([RBENCH, f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/a", "dataset.limit=3",
                          f"cache.dir={tmp_path}/c", f"hydra.run.dir={tmp_path}/h"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("rbench")
    (run,) = MlflowClient(tracking_uri=uri).search_runs([exp.experiment_id])
    assert (f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}"
            "?workflowType=machine_learning") in out.stdout
    assert f"#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=rbench" in out.stdout
    assert f"mlflow ui --backend-store-uri {uri}" in out.stdout
    assert layout.run_url("http://alice:pw@mlflow.internal:5000/", "3", "abc") == \
        "http://alice:***@mlflow.internal:5000/#/experiments/3/runs/abc?workflowType=machine_learning"


@pytest.mark.slow
def test_a_routed_run_names_its_router_and_routes(tmp_path):
    """#24 point 5: a routed run's description, plot title, tag and report row show the router and its routes."""
    from benchmarks.tracking.groups import routes

    cfg = compose_cfg(["router=rules", "retriever=bm25"])
    from omegaconf import OmegaConf

    text = routes(OmegaConf.to_container(cfg, resolve=True))
    assert text == "simple→dense; exact_term→hybrid; multi_hop→hybrid+iterative_links"
    assert routes(OmegaConf.to_container(compose_cfg([]), resolve=True)) == ""
    # end to end: the run's tag and description, and the report's row
    uri = f"sqlite:///{tmp_path}/m.db"
    run_experiment(compose_cfg(["router=rules", f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/a",
                                f"cache.dir={tmp_path}/c", "tracking.experiment=routed", "dataset.limit=4"]))
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("routed").experiment_id])
    assert run.data.tags["routes"] == text and f"router=rules (routes: {text})" in run.data.tags["mlflow.note.content"]
    from benchmarks.report import main as report_main

    assert report_main(["--tracking-uri", uri, "--experiment", "routed", "--out", str(tmp_path / "rep")]) == 0
    assert f"router=rules ({text})" in (tmp_path / "rep.md").read_text()


def test_reports_read_finished_runs_unless_asked(tmp_path):
    """#24 point 4: a FAILED run stays out of reports; ``--include-unfinished`` lists it, marked."""
    from benchmarks.report import main as report_main
    from benchmarks.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path}/m.db"
    run_experiment(compose_cfg([f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/a", "dataset.limit=3",
                                "tracking.experiment=mixed"]))
    tracker = Tracker(uri=uri, experiment="mixed", artifact_root=str(tmp_path / "a"), run_name="broken")
    with pytest.raises(RuntimeError):
        with tracker:
            tracker.start({"config_fingerprint": "f" * 16, "dataset": "enterprise-seed0"})
            tracker.log_params({"retriever": "dense"})
            raise RuntimeError("boom")
    out = tmp_path / "r"
    assert report_main(["--tracking-uri", uri, "--experiment", "mixed", "--out", str(out)]) == 0
    assert "FAILED" not in out.with_suffix(".md").read_text() and "| dense" not in out.with_suffix(".md").read_text()
    assert report_main(["--tracking-uri", uri, "--experiment", "mixed", "--out", str(out), "--include-unfinished"]) == 0
    assert "dense [FAILED]" in out.with_suffix(".md").read_text()


def test_by_label_plot_shows_the_failure_measures(tmp_path, monkeypatch):
    """#36: by_label.png has a bar per label for each measure a label has (span recall, stale hits beside nDCG and
    coverage), each bar the label's value, and no bar where a label has no query for the measure."""
    import matplotlib.figure

    from benchmarks.run.visuals import metric_plots

    saved = {}
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: (saved.__setitem__(str(path).rsplit("/", 1)[-1], fig), real(fig, path, **kw)))
    by_label = {"chunk_boundary": {"n": 4, "ndcg_at_10": 1.0, "evidence_coverage_at_10": 1.0, "span_recall_at_budget": 0.25},
                "stale_version": {"n": 2, "ndcg_at_10": 0.8, "evidence_coverage_at_10": 1.0, "stale_hit_rate": 0.5}}
    written = metric_plots(tmp_path, {"ndcg_at_10": 0.9}, by_label, [10], "t")
    assert "by_label.png" in written and (tmp_path / "by_label.png").stat().st_size > 0
    ax = saved["by_label.png"].axes[0]
    series = {c.get_label(): [b.get_height() for b in c] for c in ax.containers}
    assert series["nDCG@10"] == [1.0, 0.8] and series["span recall within budget"][0] == 0.25
    heights = series["stale hits (lower is better)"]
    assert heights[0] != heights[0] and heights[1] == 0.5  # NaN: chunk_boundary asks about no version
