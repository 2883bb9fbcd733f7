"""MLflow off the hot path: a helper process that imports MLflow and opens the store while ``rbench`` loads,
retrieves and evaluates, and then logs the run.

Importing MLflow and opening its SQLite store take about 2 s of a warm default run that computes in well under
one. ``rbench`` forks this helper first thing (:func:`prestart`, POSIX only); the run's :class:`HelperTracker` sends
it each store operation over a pipe. Operations whose answer the run does not need yet (start the run, log its
params, metrics, tags, artifacts) are queued and the run goes on; the first operation whose answer it needs (the
run's id, the experiment's id, the run's end) waits for everything queued before it and raises the first error
any of them raised, as the same exception :class:`Tracker` would have raised, where it would have surfaced. The
runner flushes before its artifact folder goes away and inside its keep-what-was-computed handler, so a store
that fails while logging loses nothing. Whether this point already has a FINISHED run is read from the SQLite
file directly (:func:`finished_in_sqlite`, milliseconds, read-only), so skipping never waits for MLflow.

The helper ignores SIGINT and SIGTERM (the run's own process turns them into KILLED through the pipe), is used
only by the process that forked it, and ends when that process closes the pipe or exits. Where it cannot be used
(no ``fork``, a remote tracking server, a child process of a launcher, or the Python API), runs use
:class:`Tracker` directly, as before.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from benchmarks.logs import VERBOSE, quiet_third_party, verbose_wanted
from benchmarks.tracking.tracker import StoredRun, Tracker, _local_store


def finished_in_sqlite(store: Path, experiment: str, fingerprint: str) -> StoredRun | None:
    """The latest active FINISHED run of ``experiment`` whose ``config_fingerprint`` tag is ``fingerprint``, read
    from MLflow's SQLite schema read-only (the same answer as ``MlflowClient.search_runs`` with that filter);
    None when there is none, or no store yet. Raises ``sqlite3.Error`` on a file it cannot read this way (the
    caller asks MLflow instead)."""
    if not store.is_file():
        return None
    con = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute(
            "SELECT r.run_uuid FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
            "JOIN tags t ON t.run_uuid = r.run_uuid WHERE e.name = ? AND t.key = 'config_fingerprint' "
            "AND t.value = ? AND r.status = 'FINISHED' AND r.lifecycle_stage = 'active' "
            "ORDER BY r.start_time DESC, r.run_uuid LIMIT 1", (experiment, fingerprint)).fetchone()
        if row is None:
            return None
        metrics = {key: float("nan") if is_nan else float(value) for key, value, is_nan in con.execute(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (row[0],))}
        return StoredRun(row[0], metrics)
    finally:
        con.close()


# ------------------------------------------------------------------------------------------ the helper
class _Helper:
    def __init__(self, pid: int, conn: Any, owner: int) -> None:
        self.pid, self.conn, self.owner = pid, conn, owner
        self.outstanding = False  # operations queued since the last answer: stop() lets the helper finish them
        self.asked = 0  # the number of the last operation that waits; its answer carries it


_HELPER: _Helper | None = None


def prestart() -> None:
    """Fork the helper (once per process, POSIX): it imports MLflow at once and waits for the run's first message.
    :func:`stop` ends it; ``rbench`` starts it before its pre-checks and stops it when its command ends."""
    global _HELPER
    import threading

    if _HELPER is not None or not hasattr(os, "fork") or os.environ.get("RBENCH_NO_HELPER"):
        return
    if threading.active_count() > 1:  # a lock another thread holds would stay held in the fork: no helper
        return
    import multiprocessing

    parent_end, child_end = multiprocessing.Pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the helper
        code = 0
        try:
            parent_end.close()
            _serve(child_end)
        except BaseException:  # noqa: BLE001 - nothing of the helper's own may reach the terminal
            code = 1
        finally:
            os._exit(code)
    child_end.close()
    _HELPER = _Helper(pid, parent_end, os.getpid())
    import atexit

    atexit.register(stop)


def stop() -> None:
    """Close the pipe (the helper ends) and reap it; runs use :class:`Tracker` directly from then on."""
    global _HELPER
    helper, _HELPER = _HELPER, None
    if helper is None or helper.owner != os.getpid():
        return
    if not helper.outstanding:  # nothing left to do (a run flushed, or none used it: --help, a config error)
        try:
            os.kill(helper.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        helper.conn.close()
    except OSError:
        pass
    import time

    deadline = time.monotonic() + 10  # it ends at the pipe's end; one that does not is not waited for
    try:
        while os.waitpid(helper.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(helper.pid, signal.SIGKILL)
                os.waitpid(helper.pid, 0)
                break
            time.sleep(0.02)
    except (ChildProcessError, ProcessLookupError):
        pass


def available(uri: str) -> bool:
    """Whether this process has its own helper and ``uri`` is a local SQLite store."""
    return _HELPER is not None and _HELPER.owner == os.getpid() and _local_store(uri) is not None


def _serve(conn: Any) -> None:
    """The helper's loop: one Tracker at a time, its operations in the order sent. A queued operation's error is
    kept and answered at the next operation that waits (later queued ones are skipped: they would act on a run
    that may not exist)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's process decides what an interrupt means
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not verbose_wanted():  # read by MLflow when it is imported; hydra.verbose=true arrives with the run
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401 - the point of the helper: imported while the run computes
    import mlflow.entities  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    tracker: Tracker | None = None
    pending: BaseException | None = None
    while True:
        try:
            name, args, kwargs, wait = conn.recv()
        except (EOFError, OSError):
            return
        if name == "__init__":
            quiet_third_party(kwargs.pop("verbose", False))  # as the run's own process prints
            if VERBOSE["on"]:
                logging.getLogger("mlflow").setLevel(logging.INFO)
            tracker, pending = Tracker(*args, **kwargs), None
            try:
                tracker.client  # noqa: B018 - open (create, migrate) the store now, while the run computes
            except BaseException as err:  # noqa: BLE001 - answered at the first operation that waits
                pending = err
            continue
        result, error = None, pending
        if error is None and name != "flush":
            try:
                result = getattr(tracker, name)(*args, **kwargs)
            except BaseException as err:  # noqa: BLE001 - sent back to be raised in the run's process
                error = err
        if not wait:
            pending = error
            continue
        pending = None
        conn.send((wait, "err", _portable(error)) if error is not None else (wait, "ok", (result, tracker.run_id)))


def _portable(err: BaseException) -> bytes:
    """The exception pickled; one that does not survive pickling becomes a RuntimeError with its text."""
    try:
        data = pickle.dumps(err)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - an exception type that cannot be rebuilt
        return pickle.dumps(RuntimeError(f"{type(err).__name__}: {err}"))


class HelperTracker(Tracker):
    """A :class:`Tracker` whose store operations run in the helper (see the module's docstring)."""

    def __init__(self, *, uri: str, experiment: str, artifact_root: str | None = None, run_name: str | None = None) -> None:
        super().__init__(uri=uri, experiment=experiment, artifact_root=artifact_root, run_name=run_name)
        self._conn = _HELPER.conn  # type: ignore[union-attr] - available() was checked
        self._sent_init = False
        self._started = False

    def _init(self) -> None:
        if not self._sent_init:  # the run name may be set after construction: sent with the first operation
            self._conn.send(("__init__", (), {"uri": self.uri, "experiment": self.experiment,
                                              "artifact_root": self.artifact_root, "run_name": self.run_name,
                                              "verbose": VERBOSE["on"]}, 0))
            self._sent_init = True

    def _queue(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._init()
        self._conn.send((name, args, kwargs, 0))
        _HELPER.outstanding = True  # type: ignore[union-attr]

    def _ask(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._init()
        helper = _HELPER
        helper.asked += 1  # type: ignore[union-attr]
        number = helper.asked  # type: ignore[union-attr]
        self._conn.send((name, args, kwargs, number))
        while True:  # an answer to an earlier wait that was interrupted (Ctrl-C) is not this one's: read past it
            answered, kind, payload = self._conn.recv()
            if answered == number:
                break
        helper.outstanding = False  # type: ignore[union-attr] - everything sent before is done
        if kind == "err":
            raise pickle.loads(payload)
        result, run_id = payload
        if run_id is not None:
            self.run_id = run_id
        return result

    @property
    def client(self):  # noqa: ANN201 - the helper's client stays in the helper
        raise RuntimeError("HelperTracker has no client in this process")

    # queued: the run goes on while the helper works
    def start(self, tags: Mapping[str, str] | None = None, pid: int | None = None) -> str | None:  # type: ignore[override]
        self._queue("__setattr__", "run_name", self.run_name)  # named after the tracker was made (runner.run_name)
        self._queue("start", tags, pid=os.getpid())
        self._started = True
        return None

    def reap_dead(self, fingerprint: str) -> list[str]:
        self._queue("reap_dead", fingerprint)
        return []

    def log_params(self, params: Mapping[str, str]) -> None:
        self._queue("log_params", dict(params))

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._queue("log_metrics", dict(metrics))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._queue("set_tags", dict(tags))

    def log_dataset(self, name: str, digest: str, source: str, context: str = "eval", **profile: Any) -> None:
        self._queue("log_dataset", name, digest, source, context, **profile)

    def set_view(self, state_of: Callable[[str | None], str]) -> None:
        self._queue("set_view", state_of)

    def log_artifacts(self, folder: Path) -> None:
        self._queue("log_artifacts", folder)

    # answered: they wait for everything queued before them
    def flush(self) -> str | None:
        """Wait until every queued operation is done; raise the first error one of them raised."""
        self._ask("flush")
        return self.run_id

    def finished_run(self, fingerprint: str) -> Any | None:
        store = _local_store(self.uri)
        try:
            return finished_in_sqlite(store, self.experiment, fingerprint)
        except sqlite3.Error:
            return self._ask("finished_run", fingerprint)

    def experiment_id(self) -> str:
        return self._ask("experiment_id")

    def end(self, status: str) -> None:
        if self._started:
            self._ask("end", status)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._started and self.run_id is None:
            try:  # the run's id (and whether it exists): needed to mark it
                self.flush()
            except Exception as err:
                if exc_type is None:
                    raise
                if self.run_id is None:  # the run was never created: the error being raised says why
                    print(f"rbench: the MLflow run could not be logged ({type(err).__name__}: "
                          f"{' '.join(str(err).split())[:200]})", file=sys.stderr)
                    return
        super().__exit__(exc_type, exc, tb)


def tracker_for(*, uri: str, experiment: str, artifact_root: str | None = None, run_name: str | None = None) -> Tracker:
    """The run's tracker: through the helper where it can be used, else a plain :class:`Tracker`."""
    kind = HelperTracker if available(uri) else Tracker
    return kind(uri=uri, experiment=experiment, artifact_root=artifact_root, run_name=run_name)
