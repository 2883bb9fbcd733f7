"""#24: what a person sees in a terminal, read through a pseudo-terminal (tqdm bars and isatty paths on): a
sweep says its total and ETA and ends with one table of its points; no INFO lines; the run's UI URL."""

import os
import pty
import re
import select
import subprocess
import time

import pytest

from test_config import RBENCH

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command


def run_in_pty(args, cwd, timeout=300):
    """Run ``args`` with stdout and stderr on a pseudo-terminal; return everything it printed."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "RBENCH_VERBOSE"}
    proc = subprocess.Popen(args, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, cwd=cwd,
                            env={**env, "COLUMNS": "160"})
    os.close(follower)
    out, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its side
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    return proc.returncode, out.decode("utf-8", "replace").replace("\r\n", "\n")


def test_a_sweep_in_a_terminal(tmp_path):
    code, out = run_in_pty([RBENCH, "-m", "retriever.k1=0.6,1.2,1.8", "dataset.limit=12",
                            f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/a",
                            f"cache.dir={tmp_path}/c", f"hydra.sweep.dir={tmp_path}/h"], tmp_path)
    assert code == 0, out[-3000:]
    assert "sweep point 1/3" in out and "sweep point 3/3" in out and "ETA" in out
    assert "[INFO]" not in out and " INFO " not in out, out[:3000]
    # one closing table: every point, best first
    tail = out[out.index("sweep done"):]
    rows = re.findall(r"^\s+([0-9.]+)\s+([0-9.]+)\s+k1 ([0-9.]+), limit 12 · bm25", tail, re.M)
    assert len(rows) == 3 and [float(r[0]) for r in rows] == sorted((float(r[0]) for r in rows), reverse=True)
    assert out.count("MLflow: http://127.0.0.1:5000/#/experiments/") == 3


def test_ctrl_c_names_the_run_it_marks_killed(tmp_path):
    """The tracker marks its run KILLED and hands the run id to the command line's one closing line
    (the line itself: tests/test_reliability.py, with real signals)."""
    import pytest
    from mlflow.tracking import MlflowClient

    from benchmarks.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path}/m.db"
    tracker = Tracker(uri=uri, experiment="x", artifact_root=str(tmp_path / "a"), run_name="r")
    with pytest.raises(KeyboardInterrupt) as caught:
        with tracker:
            tracker.start({})
            raise KeyboardInterrupt
    assert caught.value.rbench_killed_run == tracker.run_id
    assert MlflowClient(tracking_uri=uri).get_run(tracker.run_id).info.status == "KILLED"
