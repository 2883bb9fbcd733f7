"""#7: the routing report's done-criterion logic, and the story's per-label table computed by hand; #36: the
story honours rerun=false (a second story skips both finished runs and prints the same table)."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.datasets.base import Dataset
from benchmarks.evaluation.metrics import Evaluation
from benchmarks.studies.routing import criterion
from benchmarks.run.runner import RunResult, breakdown
from benchmarks.evaluation.metrics import stale_sets
from benchmarks.story import per_label, table
from chunkers import Document, Query


def row(strategy, ndcg, cov, calls):
    return {"dataset": "d", "strategy": strategy, "ndcg_at_10": ndcg, "evidence_coverage_at_10": cov,
            "retrieval_calls_mean": calls}


def test_criterion_pass_and_fail():
    ok = [row("router", 0.975, 0.99, 1.4), row("simple", 0.90, 0.80, 1.0), row("multi_hop", 0.984, 1.0, 2.0)]
    assert criterion(ok).count("PASS") == 1
    worse = [row("router", 0.970, 0.99, 1.4), row("multi_hop", 0.984, 1.0, 2.0)]  # 0.014 behind on nDCG
    assert "FAIL" in criterion(worse)
    costlier = [row("router", 0.984, 1.0, 2.0), row("multi_hop", 0.984, 1.0, 2.0)]  # not cheaper
    assert "FAIL" in criterion(costlier)


def test_story_per_label_by_hand():
    docs = [Document("v1", "", "", {"superseded_by": "v2"}), Document("v2", "", ""), Document("x", "", "")]
    qs = [Query("s1", "a", {"label": "stale_version", "stale_doc_ids": ["v1"], "current_doc_id": "v2"}),
          Query("s2", "b", {"label": "stale_version", "stale_doc_ids": ["v1"], "current_doc_id": "v2"}),
          Query("c1", "c", {"label": "chunk_boundary"})]
    ds = Dataset("t", docs, qs, {"s1": {"v2": 1}, "s2": {"v2": 1}, "c1": {"x": 1}})
    per_q = {"s1": {"ndcg_at_10": 0.5, "evidence_coverage_at_10": 1.0}, "s2": {"ndcg_at_10": 1.0, "evidence_coverage_at_10": 1.0},
             "c1": {"ndcg_at_10": 1.0, "evidence_coverage_at_10": 1.0}}
    ev = Evaluation(mean={}, per_query=per_q, n_scored=3, n_skipped=0)
    run = {"s1": {"v1": 2.0, "v2": 1.0}, "s2": {"v2": 2.0, "v1": 1.0}, "c1": {"x": 1.0}}
    got = breakdown(ds.queries, ev, rows=[{"query_id": "c1", "span_level_ok": False}], run=run,
                    sets=stale_sets(ds.queries, ds.qrels, ds.corpus))
    assert got["stale_version"]["n"] == 2 and got["stale_version"]["ndcg_at_10"] == 0.75
    assert got["stale_version"]["stale_hit_rate"] == 0.5  # s1: the old version first
    assert "span_recall_at_budget" not in got["stale_version"]  # no gold spans among them: not a 0
    assert got["chunk_boundary"]["span_recall_at_budget"] == 0.0 and "stale_hit_rate" not in got["chunk_boundary"]
    result = RunResult("r1", {}, by_label=got)
    assert per_label(result, client=None) is got  # computed by the job: no store read
    text = table(got, got, {"stale_version": Counter({"stale_version": 1})})
    assert "stale 0.50 -> 0.50" in text and "stale_version 1" in text and "span 0.00 -> 0.00" in text


@pytest.mark.slow
def test_story_skips_its_finished_runs(tmp_path: Path):
    """rerun=false (the default) holds for the story: the second job adds no run, says both were skipped, and its
    table (read back from the runs' summary.json) is the first one's."""
    rbench = str(Path(sys.executable).parent / "rbench")
    env = {**os.environ, "RBENCH_HOME": str(tmp_path)}
    argv = [rbench, "experiment=story", "dataset.limit=30", "cache.mode=off"]

    def story() -> str:
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout[done.stdout.index("rbench story:"):]

    first, second = story(), story()
    assert "skipped" not in first and second.count("FINISHED before, so skipped") == 2
    table_of = lambda text: text[text.index("label "):text.index("baseline audit:")]  # noqa: E731
    assert table_of(first) == table_of(second) and "span " in table_of(first)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/results/mlflow.db")
    exp = client.get_experiment_by_name("story")
    assert len(client.search_runs([exp.experiment_id])) == 2
