"""#8: parallel (joblib) and cluster-style (submitit_local) sweeps, resume after a kill, concurrent writers to
one local store, and a real MLflow tracking server with concurrent clients. Each runs `rbench` as users do."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import mlflow_server_at
from test_config import RBENCH
from benchmarks.tracking.store import download_artifact

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command



def rbench(tmp, *args, wait=True, **kw):
    cmd = [RBENCH, "-m", f"tracking.uri={kw.get('uri', f'sqlite:///{tmp}/m.db')}", f"tracking.artifact_root={tmp}/art",
           "tracking.experiment=sweep", f"hydra.sweep.dir={tmp}/sweep", f"cache.dir={tmp}/cache", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def statuses(db):
    with sqlite3.connect(db) as con:
        return con.execute("select r.status, p.value from runs r join params p on p.run_uuid = r.run_uuid "
                           "where p.key = 'dataset.limit'").fetchall()


def test_joblib_sweep_of_8_points_logs_every_run(tmp_path):
    rbench(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "dataset.limit=range(3,11)")
    rows = statuses(tmp_path / "m.db")
    assert sorted(int(v) for s, v in rows if s == "FINISHED") == list(range(3, 11))
    assert len(rows) == 8


def test_sweep_points_say_where_the_sweep_is(tmp_path):
    out = rbench(tmp_path, "dataset.limit=3,4", "retriever.k1=0.9,1.2")  # off a terminal: one line per point
    assert [line.split(" (")[0] for line in out.splitlines() if "sweep point" in line] == \
        [f"rbench: sweep point {i}/4" for i in range(1, 5)]
    assert "ETA" in out.split("sweep point 2/4", 1)[1].splitlines()[0]


def test_submitit_local_sweep(tmp_path):
    out = rbench(tmp_path, "hydra/launcher=submitit_local", "dataset.limit=3,4")
    assert "Submitit 'local' sweep" in out
    assert sorted(statuses(tmp_path / "m.db")) == [("FINISHED", "3"), ("FINISHED", "4")]


def test_killed_sweep_resumes_with_one_finished_run_per_point(tmp_path):
    points = "dataset.limit=range(3,9)"  # 6 points, one after another
    proc = rbench(tmp_path, points, wait=False)
    db = tmp_path / "m.db"
    deadline = time.time() + 300
    while time.time() < deadline:
        if db.exists():
            try:
                if sum(s == "FINISHED" for s, _ in statuses(db)) >= 2:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # no handler runs: whatever was in flight stays RUNNING
    proc.wait(30)
    before = statuses(db)
    done_before = sum(s == "FINISHED" for s, _ in before)
    assert 2 <= done_before < 6
    out = rbench(tmp_path, points)
    assert out.count("rbench: skipped") == done_before
    # a skipped point prints its stored results (#24), not only that it was skipped
    assert out.count("Its stored results:") == done_before and "ndcg " in out.split("Its stored results:")[1]
    after = statuses(db)
    finished = sorted(int(v) for s, v in after if s == "FINISHED")
    assert finished == list(range(3, 9))  # exactly one FINISHED run per point, no duplicates
    assert not [r for r in after if r[0] == "RUNNING"]  # the killed run was marked KILLED, not left RUNNING
    # rerun=true forces the points again
    rbench(tmp_path, "dataset.limit=3", "rerun=true")
    assert sum(1 for s, v in statuses(db) if s == "FINISHED" and v == "3") == 2


def test_tracking_server_with_concurrent_clients(tmp_path):
    with mlflow_server_at(tmp_path, workers=2, artifacts=tmp_path / "server-artifacts") as uri:
        rbench(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "dataset.limit=3,4,5,6", uri=uri)
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("sweep").experiment_id])
        assert sorted(r.data.params["dataset.limit"] for r in runs) == ["3", "4", "5", "6"]
        assert all(r.info.status == "FINISHED" for r in runs)
        for r in runs:  # artifacts went through the server into its artifact store
            names = {a.path for a in client.list_artifacts(r.info.run_id)}
            assert {"per_query.csv", "run.trec", "audit.jsonl", "config.yaml"} <= names
            local = download_artifact(client, r.info.run_id, "per_query.csv", str(tmp_path / r.info.run_id))
            assert len(Path(local).read_text().splitlines()) == int(r.data.params["dataset.limit"]) + 1
        assert any((tmp_path / "server-artifacts").rglob("per_query.csv"))


def test_cluster_launcher_configs_compose(tmp_path):
    out = subprocess.run([RBENCH, "hydra/launcher=slurm", "--cfg", "hydra"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "SlurmLauncher" in out.stdout and "array_parallelism: 16" in out.stdout and "mem_gb: 32" in out.stdout
    out = subprocess.run([RBENCH, "hydra/launcher=local_parallel", "--cfg", "hydra"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert "JoblibLauncher" in out.stdout and "n_jobs: 2" in out.stdout


def test_a_sweep_ends_with_one_table_of_its_points_best_first(tmp_path):
    """#24: a closing table (each point's nDCG@10 and Recall@100, best first) instead of only a table per point."""
    out = subprocess.run([str(Path(sys.executable).parent / "rbench"), "-m", "experiment=handbook", "retriever=bm25",
                          f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/art",
                          f"cache.dir={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/sweep"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    tail = out.stdout.split("rbench: sweep done in", 1)[1]
    assert "4 of 4 points FINISHED" in tail
    scores = [float(line.split()[0]) for line in tail.splitlines()[2:] if line.strip()]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    assert tail.splitlines()[2].endswith("<- best")


def test_a_resumed_sweep_lists_every_point(tmp_path):
    """#36: the second, larger sweep skips the two points that FINISHED before and runs the new one; its closing
    table has all three (the skipped ones marked ``earlier``), best first, not only the point run this time."""
    import re

    common = [str(Path(sys.executable).parent / "rbench"), "-m", "dataset.limit=8", f"tracking.uri=sqlite:///{tmp_path}/m.db",
              f"tracking.artifact_root={tmp_path}/art", f"cache.dir={tmp_path}/cache"]
    first = subprocess.run([*common, "retriever.k1=0.6,1.2", f"hydra.sweep.dir={tmp_path}/s1"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "2 of 2 points FINISHED;" in first.stdout  # nothing earlier: no breakdown
    again = subprocess.run([*common, "retriever.k1=0.6,1.2,1.8", f"hydra.sweep.dir={tmp_path}/s2"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    tail = again.stdout.split("rbench: sweep done in", 1)[1]
    assert "3 of 3 points FINISHED (1 run now, 2 FINISHED earlier, skipped)" in tail
    rows = re.findall(r"^\s+([0-9.]+)\s+([0-9.]+)\s+limit 8, k1 ([0-9.]+) · bm25 · \S+ \(\w{8}\)(  earlier)?", tail, re.M)
    assert sorted(r[2] for r in rows) == ["0.6", "1.2", "1.8"]
    assert {r[2] for r in rows if r[3]} == {"0.6", "1.2"}
    scores = [float(r[0]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_the_closing_table_marks_failed_points():
    from types import SimpleNamespace as NS

    from benchmarks.run.sweep import summary_lines

    run = lambda name, status, ndcg: NS(info=NS(run_name=name, status=status),  # noqa: E731
                                        data=NS(metrics={"ndcg_at_10": ndcg, "at_k/recall_at_100": 0.9}))
    runs = {"a" * 32: run("k1 0.6 · bm25 · e", "FINISHED", 0.5), "b" * 32: run("k1 1.2 · bm25 · e", "FINISHED", 0.7),
            "c" * 32: run("k1 9 · bm25 · e", "FAILED", 0.0)}
    points = [{"num": 0, "status": "COMPLETED", "run_id": "a" * 32, "skipped": True},
              {"num": 1, "status": "COMPLETED", "run_id": "b" * 32, "skipped": False},
              {"num": 2, "status": "FAILED", "run_id": "c" * 32},
              {"num": 3, "status": "FAILED", "overrides": ["retriever.k1=-1"]},
              {"num": 4, "status": "COMPLETED", "overrides": ["experiment=story"]}]  # several runs of its own: no row
    lines = summary_lines(points, runs, "ndcg_at_10", "recall_at_100", 61)
    assert "2 of 4 points FINISHED (1 run now, 1 FINISHED earlier, skipped); 2 FAILED or KILLED" in lines[0]
    assert lines[2].split()[:2] == ["0.7000", "0.9000"] and lines[2].endswith("<- best")
    assert lines[3].rstrip().endswith("(aaaaaaaa)  earlier")
    assert lines[4].split()[0] == "FAILED" and "k1 9 · bm25" in lines[4]
    assert lines[5].split() == ["FAILED", "retriever.k1=-1"]
