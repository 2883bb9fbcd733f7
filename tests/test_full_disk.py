"""A full disk is a clear error, and nothing already stored is harmed (#27).

Two ways: a real small tmpfs as ``RBENCH_HOME`` (and ``TMPDIR``) at sizes chosen so that space runs out in each
writer in turn -- Hydra's run folder, the MLflow store's creation, a cache entry, the run's artifacts in the
temporary folder, the artifact store -- then space returns and the same command must give a clean run's
numbers; and ``ENOSPC`` injected into the writers the harness owns (reports, cache entries, the store).
Mounting needs root (CI runs as root); elsewhere those tests are skipped with the reason printed.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command

BIN = Path(sys.executable).parent
METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10", "evidence_coverage_at_10")


def _mount(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``path``; the reason it cannot be done, else None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs as root)"
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    return None if out.returncode == 0 else f"mount -t tmpfs failed: {out.stderr.strip()}"


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _rbench(home: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RBENCH_HOME": str(home), "TMPDIR": str(home / "tmp")}
    for key in ("MLFLOW_TRACKING_URI", "RBENCH_CACHE_DIR", "HYDRA_FULL_ERROR"):
        env.pop(key, None)
    (home / "tmp").mkdir(exist_ok=True)
    return subprocess.run([str(BIN / "rbench"), *argv], cwd=home, env=env, capture_output=True, text=True, timeout=600)


def _finished_metrics(store: Path) -> dict[str, float]:
    con = sqlite3.connect(store)
    try:
        rows = con.execute("select m.key, m.value from latest_metrics m join runs r on m.run_uuid = r.run_uuid "
                           "where r.status = 'FINISHED'").fetchall()
    finally:
        con.close()
    return {k: v for k, v in rows if k in METRICS}


def _assert_store_intact(results: Path) -> None:
    """The store is absent or whole: every table MLflow made readable, no scratch copy of a creation left."""
    store = results / "mlflow.db"
    assert not list(results.glob(".mlflow.db.part-*")), list(results.glob(".mlflow.db.part-*"))
    if not store.exists():
        return
    con = sqlite3.connect(store)
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
        assert {"runs", "alembic_version", "metrics", "params"} <= tables, tables
        assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
        con.execute("select count(*), group_concat(status) from runs").fetchone()
    finally:
        con.close()


#: tmpfs sizes for the default run (BM25 on the generated set), dense enough that space runs out in every writer
#: in turn -- which writer fills at which size depends on the library versions (MLflow's store, the plots) and on
#: the order the run and its tracking helper write in (the cache first, ~0.6 MB, while the helper opens the store),
#: so the writers reached are collected and checked together at the end
SIZES = ["4k", "200k", "400k", "1m", "1500k", "1800k", "2100k", "2500k", "3000k", "3500k", "4000k", "4500k"]
#: every writer the harness names in a full-disk message (the message's words after "writing ")
WRITERS = ("a file under", "the run folder", "the MLflow store", "the cache entry",
           "the run's artifacts (a temporary folder)", "the run's artifacts")
REACHED: dict[str, str] = {}


@pytest.fixture(scope="module")
def clean_metrics(tmp_path_factory):
    home = tmp_path_factory.mktemp("clean")
    out = _rbench(home)
    assert out.returncode == 0, out.stderr[-3000:]
    return _finished_metrics(home / "results" / "mlflow.db")


@pytest.mark.parametrize("size", SIZES)
def test_a_full_tmpfs_is_one_line_and_the_rerun_gives_a_clean_runs_numbers(tmp_path, size, clean_metrics):
    home = tmp_path / "home"
    why = _mount(home, size)
    if why:
        print(f"skipped: {why}")
        pytest.skip(why)
    try:
        out = _rbench(home)
        assert out.returncode in (0, 2), (out.returncode, out.stderr[-3000:])
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        if out.returncode == 2:
            errors = [line for line in out.stderr.splitlines() if line.startswith("rbench: error:")]
            assert len(errors) == 1 and "no space left on the device writing " in errors[0], out.stderr[-2000:]
            assert str(home) in errors[0]  # the path is named
            what = errors[0].split("no space left on the device writing ", 1)[1]
            writer = max((w for w in WRITERS if what.startswith(w)), key=len, default=what)
            REACHED[size] = writer
            _assert_store_intact(home / "results")
            art = home / "results" / "mlartifacts"
            if art.is_dir():  # a run cut short shows no half of its artifacts
                assert not [p for p in art.rglob("*") if p.is_file()], list(art.rglob("*"))
        subprocess.run(["mount", "-o", "remount,size=64m", str(home)], check=True)
        again = _rbench(home)
        assert again.returncode == 0, again.stderr[-3000:]
        _assert_store_intact(home / "results")
        assert _finished_metrics(home / "results" / "mlflow.db") == clean_metrics
    finally:
        _umount(home)


def test_space_ran_out_in_every_writer_in_turn():
    if not REACHED:
        pytest.skip("no tmpfs case ran (see the skipped tests' reason)")
    print("writer that filled the disk, by tmpfs size:", REACHED)
    reached = set(REACHED.values())
    assert {"the MLflow store", "the cache entry"} <= reached, REACHED
    assert reached & {"the run's artifacts (a temporary folder)", "the run's artifacts"}, REACHED
    assert reached & {"a file under", "the run folder"}, REACHED  # Hydra's run folder, before the job


# ------------------------------------------------------------------------------------------ injected ENOSPC
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_report_writer_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    from retrievers.infrastructure import safe_write
    from retrievers.infrastructure.errors import NoSpaceError

    target = tmp_path / "report.md"
    safe_write.write_text(target, "old report\n")
    monkeypatch.setattr(safe_write.os, "fsync", _enospc)
    with pytest.raises(NoSpaceError, match=r"no space left on the device writing the report .*report\.md"):
        safe_write.write_text(target, "new report that does not fit\n", what="the report")
    assert target.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary file left


def test_cache_entry_is_whole_or_absent(tmp_path):
    from retrievers.cache import Cache
    from retrievers.infrastructure.errors import NoSpaceError

    cache = Cache(tmp_path)

    def write(folder: Path) -> None:
        (folder / "a.json").write_text("[1, 2, 3]")
        _enospc()

    with pytest.raises(NoSpaceError, match="the cache entry"):
        cache.put("runs", "k" * 32, write, {})
    assert cache.get("runs", "k" * 32) is None
    assert not [p for p in (tmp_path / "runs").iterdir() if not p.name.endswith(".lock")]


def _run_cli(monkeypatch, capsys, argv):
    import benchmarks.cli as cli
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setattr(sys, "argv", ["rbench", *argv])
    code = 0
    try:
        cli.run()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    finally:
        GlobalHydra.instance().clear()
    return code, capsys.readouterr().err


def test_store_full_mid_run_is_one_line_and_keeps_earlier_runs(tmp_path, monkeypatch, capsys):
    """SQLite's 'database or disk is full' while a run logs its metrics: exit 2 naming the store; the earlier run
    reads back unchanged and a rerun completes with its numbers."""
    from mlflow.tracking import MlflowClient

    store = tmp_path / "results" / "mlflow.db"
    common = [f"tracking.uri=sqlite:///{store}", f"tracking.artifact_root={tmp_path}/art", f"cache.dir={tmp_path}/cache",
              f"hydra.run.dir={tmp_path}/hydra"]
    assert _run_cli(monkeypatch, capsys, common)[0] == 0
    before = _finished_metrics(store)
    real = MlflowClient.log_batch

    def full(self, run_id, metrics=(), params=(), tags=(), **kw):
        if metrics:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, run_id, metrics=metrics, params=params, tags=tags, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", full)
    code, err = _run_cli(monkeypatch, capsys, [*common, "retriever.k1=1.3"])
    assert code == 2 and "Traceback" not in err, err
    assert f"no space left on the device writing the MLflow store sqlite:///{store}" in err
    monkeypatch.setattr(MlflowClient, "log_batch", real)
    _assert_store_intact(store.parent)
    assert _finished_metrics(store) == before
    assert _run_cli(monkeypatch, capsys, [*common, "retriever.k1=1.3"])[0] == 0
    con = sqlite3.connect(store)
    statuses = sorted(r[0] for r in con.execute("select status from runs"))
    con.close()
    assert statuses == ["FAILED", "FINISHED", "FINISHED"]


def test_rbench_report_out_of_space_is_one_line(tmp_path, monkeypatch, capsys):
    from benchmarks import cli
    from retrievers.infrastructure import safe_write

    store = tmp_path / "m.db"
    assert _run_cli(monkeypatch, capsys, [f"tracking.uri=sqlite:///{store}", f"tracking.artifact_root={tmp_path}/art",
                                          f"cache.dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/hydra"])[0] == 0
    monkeypatch.setattr(safe_write.os, "fsync", _enospc)
    monkeypatch.setattr(sys, "argv", ["rbench-report", "--experiment", "rbench", "--tracking-uri", f"sqlite:///{store}",
                                      "--out", str(tmp_path / "rep")])
    with pytest.raises(SystemExit) as exc:
        cli.report()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"rbench-report: error: no space left on the device writing the report {tmp_path}/rep.md" in err
    assert not list(tmp_path.glob("rep*")) and not list(tmp_path.glob(".rep*"))


def test_summary_of_a_full_disk_names_a_path_even_without_one_from_the_system(tmp_path, monkeypatch):
    from benchmarks.cli import _full_disk_message

    monkeypatch.setenv("RBENCH_HOME", str(tmp_path))
    assert _full_disk_message(OSError(errno.ENOSPC, "No space left on device")) == (
        f"no space left on the device writing a file under {tmp_path}; what was stored before is unchanged -- "
        "free some space and run the same command again")
    assert _full_disk_message(OSError(errno.ENOSPC, "x", str(tmp_path / "f"))).startswith(
        f"no space left on the device writing {tmp_path / 'f'};")
    assert _full_disk_message(ValueError("no")) is None
    # numpy's tofile / np.save cut short by a full device (seen filling a tmpfs): no errno, only this message
    assert _full_disk_message(OSError("14210 requested and 9184 written")) is not None
    assert _full_disk_message(OSError("some other failure")) is None
    assert json.dumps(_full_disk_message(RuntimeError("database or disk is full")))  # wrapped SQLite errors count


def test_a_status_that_cannot_be_stored_is_one_line_and_the_next_run_repairs_it(tmp_path, capsys, monkeypatch):
    """#35: when the artifacts fill the disk, the FAILED status cannot be written either; a store traceback was
    printed under the clean error and the run stayed RUNNING. Now: the run's own error goes on, the status is one line,
    and the next run of the point marks the run KILLED and says so."""
    import sqlite3
    import subprocess
    import sys

    from benchmarks.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path}/m.db"
    tracker = Tracker(uri=uri, experiment="e")

    def store_refuses(status):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(tracker, "end", store_refuses)
    with pytest.raises(OSError, match="No space left"):
        with tracker:
            tracker.start({"config_fingerprint": "fp1"})
            raise OSError(28, "No space left on device")
    err = capsys.readouterr().err
    assert f"rbench: MLflow run {tracker.run_id} could not be marked FAILED (no space left for the store)" in err
    assert "Traceback" not in err
    other = Tracker(uri=uri, experiment="e")  # an ordinary error, and a store that refuses its status
    monkeypatch.setattr(other, "end", store_refuses)
    with pytest.raises(ValueError, match="bad input"):
        with other:
            other.start({"config_fingerprint": "fp2"})
            raise ValueError("bad input")
    assert "could not be marked FAILED (the store refused: disk I/O error)" in capsys.readouterr().err
    left = tracker.run_id
    # the run was logged by a process that is gone: pretend so, as a later process sees it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    tracker.client.set_tag(left, "rbench.pid", dead)
    later = Tracker(uri=uri, experiment="e")
    assert later.reap_dead("fp1") == [left]
    assert later.client.get_run(left).info.status == "KILLED"
    assert "marked KILLED 1 run(s) of this point left RUNNING by a process that is gone" in capsys.readouterr().err
