"""#36: MLflow off the hot path (benchmarks/tracking/helper.py). The skip check read from the SQLite file agrees
with MLflow's own search; a run logged through the helper is the run the plain Tracker logs; an error of a queued
operation is raised, as its own type, at the next operation that waits; without a helper runs use Tracker."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.tracking import helper, layout
from benchmarks.tracking.helper import finished_in_sqlite, tracker_for
from benchmarks.tracking.tracker import StoredRun, Tracker


def _run(client, exp, fp, status="FINISHED", ndcg=0.5):
    r = client.create_run(exp, tags={"config_fingerprint": fp})
    client.log_metric(r.info.run_id, "ndcg_at_10", ndcg)
    client.log_metric(r.info.run_id, "at_k/recall_at_1", float("nan"))
    client.set_terminated(r.info.run_id, status)
    return r.info.run_id


def test_the_skip_check_read_from_sqlite_agrees_with_mlflow(tmp_path):
    db = tmp_path / "m.db"
    uri = f"sqlite:///{db}"
    assert finished_in_sqlite(db, "e", "fp") is None  # no store yet: no run, nothing created
    assert not db.exists()
    tracker = Tracker(uri=uri, experiment="e", artifact_root=str(tmp_path / "a"))
    client = tracker.client
    exp = tracker.experiment_id()
    other = client.create_experiment("other")
    _run(client, exp, "fp", ndcg=0.25)
    latest = _run(client, exp, "fp", ndcg=0.75)
    _run(client, exp, "fp", status="FAILED")
    deleted = _run(client, exp, "fp2")
    client.delete_run(deleted)
    _run(client, other, "fp3")
    got = finished_in_sqlite(db, "e", "fp")
    assert got.run_id == latest == tracker.finished_run("fp").run_id
    assert got.metrics["ndcg_at_10"] == 0.75 and got.metrics["at_k/recall_at_1"] != got.metrics["at_k/recall_at_1"]
    assert tracker.finished_run("fp").metrics["ndcg_at_10"] == 0.75
    for fp in ("fp2", "fp3", "nope"):  # deleted; in another experiment; none
        assert finished_in_sqlite(db, "e", fp) is None and tracker.finished_run(fp) is None
    assert isinstance(got, StoredRun)


THROUGH_HELPER = r"""
import functools, json, os, sys
from pathlib import Path
from benchmarks.tracking import helper, layout
from benchmarks.tracking.helper import HelperTracker, tracker_for

tmp = Path(sys.argv[1])
uri = f"sqlite:///{tmp}/m.db"
helper.prestart()  # a fresh, single-threaded process, as rbench's
out = {}
tracker = tracker_for(uri=uri, experiment="h", artifact_root=str(tmp / "art"), run_name="via helper")
out["helper"] = isinstance(tracker, HelperTracker)
folder = tmp / "out"
folder.mkdir()
(folder / "summary.json").write_text("{}")
with tracker:
    out["start"] = tracker.start({"config_fingerprint": "fp"})  # queued: None, the run goes on
    tracker.log_params({"retriever": "bm25", "retriever.k1": "0.9"})
    tracker.log_metrics({"ndcg_at_10": 0.5, "at_k/ndcg_at_1": 0.25})
    tracker.set_view(functools.partial(layout.view_state, ["ndcg_at_10"], ["retriever"]))
    tracker.log_artifacts(folder)
    out["run_id"] = tracker.flush()
out["finished"] = tracker.finished_run("fp").run_id  # read from the file, no wait
helper._HELPER.asked += 1  # a wait whose answer was never read (its caller interrupted by Ctrl-C) ...
tracker._conn.send(("flush", (), {}, helper._HELPER.asked))
out["experiment_id"] = tracker.experiment_id()  # ... is not taken for the next one's answer
failing = tracker_for(uri=uri, experiment="h", artifact_root=str(tmp / "art"))
try:
    with failing:
        failing.start()
        failing.log_metrics({"ndcg_at_10": "not a number"})  # queued: the helper's ValueError comes at the flush
        failing.flush()
except ValueError as err:
    out["error"] = type(err).__name__
out["failed_run"] = failing.run_id
out["pid"] = os.getpid()
print(json.dumps(out))
"""


def test_a_run_logged_through_the_helper(tmp_path):
    """In a fresh process (as rbench forks it): the run it logs is the plain Tracker's run; a queued operation's
    error is raised, as its own type, at the next wait, and the run is marked FAILED by the run's process."""
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", THROUGH_HELPER, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RBENCH_NO_HELPER": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["helper"] and out["start"] is None and out["finished"] == out["run_id"]
    uri = f"sqlite:///{tmp_path}/m.db"
    client = MlflowClient(uri)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "via helper"
    assert run.data.params["retriever.k1"] == "0.9" and run.data.metrics["at_k/ndcg_at_1"] == 0.25
    assert run.data.tags["rbench.pid"] == str(out["pid"])  # the run's own process, not the helper's
    assert [a.path for a in client.list_artifacts(out["run_id"])] == ["summary.json"]
    exp = client.get_experiment_by_name("h")
    assert out["experiment_id"] == exp.experiment_id and layout.VIEW_TAG in exp.tags  # not the flush's None
    assert out["error"] == "ValueError" and client.get_run(out["failed_run"]).info.status == "FAILED"


def test_no_helper_is_forked_beside_other_threads():
    """A fork copies a lock another thread holds, held: prestart declines in a process with other threads."""
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        helper.prestart()
        assert helper._HELPER is None
    finally:
        stop.set()
        thread.join()


def test_without_a_helper_runs_use_the_tracker(tmp_path):
    assert not helper.available(f"sqlite:///{tmp_path}/m.db")
    assert type(tracker_for(uri=f"sqlite:///{tmp_path}/m.db", experiment="x")) is Tracker
