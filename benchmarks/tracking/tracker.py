"""MLflow tracking through the client API: one run per experiment point, never left RUNNING."""

from __future__ import annotations

from dataclasses import dataclass, field

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.errors import ConfigError
from benchmarks.paths import is_place
from benchmarks.tracking.layout import VIEW_TAG
from retrievers.cache import pid_alive
from retrievers.infrastructure.redact import redact_text, redact_value
from retrievers.infrastructure.safe_write import unwritable, writing
from retrievers.pipeline import DEFAULT_PIPELINE
from retrievers.infrastructure.errors import out_of_space

log = logging.getLogger(__name__)

PARAM_MAX = 6000  # MLflow's limit on a param value


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"retriever": {"k1": 0.9}}`` -> ``{"retriever.k1": "0.9"}``; lists become JSON; secrets masked
    (``retrievers.infrastructure.redact``: a URI's password, secret-named keys)."""
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            value = redact_value(str(key), value)
            text = redact_text(json.dumps(value)) if isinstance(value, (list, tuple)) else str(value)
            out[name] = text if len(text) <= PARAM_MAX else text[: PARAM_MAX - 3] + "..."
    return out


def _local_store(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):].split("?", 1)[0])
    return None


def create_store(store: Path) -> None:
    """Create a local MLflow store so that it exists whole or not at all. MLflow creates its tables and then
    runs its schema migrations one by one; a run interrupted in between (Ctrl-C in the first seconds of the
    first run) used to leave a store that every later run failed on ("table ... already exists"). MLflow builds
    the store in a scratch file, and SQLite's backup API copies it into ``store`` in one transaction (an
    interrupted copy is rolled back, leaving a file without tables, which counts as no store)."""
    import os
    import sqlite3

    from mlflow.tracking import MlflowClient

    for stale in store.parent.glob(f".{store.name}.part-*"):  # left by a creation that was killed
        stale.unlink(missing_ok=True)
    # a new name each time: MLflow keeps an engine per URI for the life of the process
    part = store.with_name(f".{store.name}.part-{os.getpid()}-{time.time_ns()}")
    existed = store.exists()
    try:
        with writing(store, "the MLflow store"):
            retry(MlflowClient(tracking_uri=f"sqlite:///{part}").search_experiments, max_results=1)
            src, dst = sqlite3.connect(part), sqlite3.connect(store, timeout=30)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
    except BaseException:
        # a full disk or an interrupt: no trace of the attempt (an interrupted backup leaves a store without
        # tables, which the next run treats as no store; one this call created is removed)
        if not existed and not _tables(store):
            store.unlink(missing_ok=True)
        raise
    finally:
        for leftover in (part, part.with_name(part.name + "-journal"), part.with_name(part.name + "-wal"),
                         part.with_name(part.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _read_tables(store: Path) -> tuple[set[str], str | None]:
    """The tables of ``store`` and why it cannot be an SQLite store (None when it is one, or empty), found through
    SQLite itself. Never a
    plain ``open()`` and ``close()`` of a database file this process may have open: closing any descriptor of the
    file drops every POSIX lock SQLite holds on it in the process (sqlite.org/howtocorrupt.html, 2.2), so a sweep's
    next point, whose earlier points left MLflow's connections open, would lose its shared lock, and the next reader
    to close its connection (rbench-report, rbench-audit, a parallel rbench) would take the store for unused and
    delete its write-ahead log under the writer: "disk I/O error", and writes at risk. The bytes are read only
    from a file SQLite refuses, which nothing holds as a database."""
    import sqlite3

    try:
        return _tables(store), None
    except sqlite3.DatabaseError as err:
        if "not a database" not in str(err):
            return set(), f"cannot be read ({err})"
    try:
        with open(store, "rb") as fh:
            head = fh.read(16)
    except OSError as err:
        return set(), f"cannot be read ({err.strerror or err})"
    return set(), f"is not an SQLite database (it starts with {head[:8]!r})"


def _tables(store: Path) -> set[str]:
    """The tables of a SQLite file (none when it does not exist)."""
    import sqlite3

    if not store.exists():
        return set()
    con = sqlite3.connect(store, timeout=30)
    try:
        return {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
    finally:
        con.close()


def _interrupted_creation(store: Path, err: BaseException) -> bool:
    """A store whose creation was cut short (by an rbench older than ``create_store``, or by another tool):
    SQLite itself fails MLflow's migrations (a table or column that already exists, one that is missing), the
    database is not merely locked, and no run was ever logged to it, so nothing is lost by creating it again."""
    import sqlite3

    if _locked(err):
        return False
    seen: BaseException | None = err
    while seen is not None and not isinstance(seen, sqlite3.DatabaseError) \
            and not isinstance(getattr(seen, "orig", None), sqlite3.DatabaseError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return False
    if "runs" not in _tables(store):
        return True
    con = sqlite3.connect(store, timeout=30)
    try:
        return con.execute("select count(*) from runs").fetchone()[0] == 0
    finally:
        con.close()


def _locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def retry(fn, *args, attempts: int = 12, **kwargs):
    """Call ``fn``, retrying with backoff while SQLite reports the database locked (parallel sweep workers
    share one local store; SQLite allows one writer at a time)."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # sqlalchemy OperationalError, wrapped in MlflowException
            if attempt == attempts - 1 or not _locked(exc):
                raise
            time.sleep(min(2.0, 0.05 * 2 ** attempt))


#: how long the tracking server may take to answer the first request before a run gives up (seconds)
REACH_TIMEOUT_S = 5.0


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S, *, key: str = "tracking.uri",
                    hint: str = "tracking.uri / MLFLOW_TRACKING_URI") -> None:
    """Reach a tracking server once, with a short timeout, before any work: a server that is down or a host that
    does not answer is one error naming the (redacted) URI, not minutes of MLflow's retries. Any HTTP answer
    counts as reachable (401/403/404 are MLflow's to report); local stores are not probed. Also lowers MLflow's
    own retries for requests later in the run, unless the environment sets them."""
    import os
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    netloc = parts.netloc.rsplit("@", 1)[-1]  # the user-info is for MLflow's own requests, not for this probe
    probe = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", ""))
    try:
        urllib.request.urlopen(probe, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError, ValueError) as err:
        import ssl

        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLError) or isinstance(err, ssl.SSLError):
            return  # it answered over TLS; certificates are MLflow's to check (MLFLOW_TRACKING_INSECURE_TLS, ...)
        raise ConfigError(f"{key}: the tracking server {redact_text(uri)} does not answer ({reason}; waited at most "
                          f"{timeout:g} s); start it, or point {hint} at one that runs -- nothing was computed") from None


def check_store(uri: str, artifact_root: str | None = None, *, write: bool = True, key: str = "tracking.uri") -> None:
    """A local store that cannot work, found before any work: a ``sqlite:///`` path that is a folder or a file
    that is not an SQLite database, a folder where it (or the artifact root) cannot be written; for a reader
    (``write=False``: rbench-report, rbench-audit), a store that does not exist yet or is still being created, which
    a reader never creates (MLflow would, and race the writer's migrations). One error naming the path."""
    store = _local_store(uri)
    if store is not None:
        if store.is_dir():
            raise ConfigError(f"{key}: {store} is a folder, not an SQLite file")
        tables: set[str] = set()
        if store.exists():
            tables, problem = _read_tables(store)
            if problem:
                raise ConfigError(f"{key}: {store} {problem}; point {key} at a new file or an MLflow store"
                                  if "starts with" in problem else f"{key}: {store} {problem}")
        if not write:
            if not tables:  # a reader never creates (or migrates) a store: that is the writer's job
                raise ConfigError(f"{key}: no MLflow store at {store} yet: run rbench first (nothing was created)")
            return
        why = unwritable(store.parent)
        if why:
            raise ConfigError(f"tracking.uri: the MLflow store {store} cannot be written: {why}")
        if artifact_root and "://" not in str(artifact_root):
            why = unwritable(artifact_root)
            if why:
                raise ConfigError(f"tracking.artifact_root: {artifact_root} cannot be written: {why}")


#: MLflow 3's UI reads ``mlflow.experimentKind``: ``custom_model_development`` opens an experiment on its runs
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def run_name(template: str | None, choices: Mapping[str, str], dataset: str, *,
             values: Mapping[str, Any] | None = None, varied: Sequence[str] = ()) -> str:
    """What ran, led by what differs between sibling runs: a sweep point's own command-line settings first
    (``varied``, e.g. ``retriever.k1=1.2 · bm25 · scifact``), then the pipeline (options at their defaults left
    out: ``hybrid + iterative_links + bi_encoder``) and the dataset. ``tracking.run_name`` may be a template
    over the group options, ``{pipeline}``, ``{dataset}`` and any resolved config value by its dotted key, e.g.
    ``"{retriever} k1={retriever.k1} · {dataset}"``."""
    first = f"router:{choices['router']}" if choices.get("router", "none") != "none" else choices.get("retriever", "run")
    defaults = {"chunker": "none", "decomposer": "none", "versions": "ignore", "reranker": "none"}
    parts = [first] + [choices[g] for g in DEFAULT_PIPELINE
                       if choices.get(g, defaults[g]) != defaults[g]]
    if choices.get("chunker", "none") != "none":
        parts.append(f"chunks:{choices['chunker']}")
    pipeline = " + ".join(parts)
    if template:
        import re

        table = {**(values or {}), **choices, "dataset": dataset, "pipeline": pipeline}
        return re.sub(r"\{([^{}]+)\}", lambda m: str(table.get(m.group(1), m.group(0))), str(template))
    name = f"{pipeline} · {dataset}"
    # a setting that only names the dataset the name ends with (dataset.name=scifact) is not said twice
    varied = [v for v in varied if not (v.lstrip("+~").startswith("dataset.") and v.split("=", 1)[-1] == dataset)]
    if varied:
        words = [plain_setting(v) for v in varied]
        name = ", ".join(words[:4]) + (" …" if len(words) > 4 else "") + " · " + name
    return name


def plain_setting(item: str) -> str:
    """A command-line setting in plain words, as a run's name shows it: ``retriever.k1=0.9`` -> ``k1 0.9``,
    ``retriever.weights=[0.6,0.4]`` -> ``weights 0.6/0.4``, ``point={fusion:wsum,weights:[0.7,0.3]}`` ->
    ``fusion wsum 0.7/0.3`` (a dict-valued point is named by its entries; a list by its values joined by ``/``).
    What Hydra's override grammar cannot parse is shown as written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    def words(value: Any) -> str:
        if isinstance(value, dict):
            return " ".join(words(v) if isinstance(v, (list, tuple)) else f"{k} {words(v)}" for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return "/".join(words(v) for v in value)
        return str(value)

    try:
        override = OverridesParser.create().parse_override(item)
        value = override.value()
    except Exception:  # noqa: BLE001 - not an override Hydra parses: the text itself
        return item
    if isinstance(value, dict):
        return words(value)
    parts = override.key_or_group.split("@", 1)[0].split(".")
    name = parts[-2] if parts[-1] == "kind" and len(parts) > 1 else parts[-1]  # retriever.index.kind=hnsw: index hnsw
    return f"{name} {words(value)}"




def varied_settings(groups: Sequence[str], task: Sequence[str] | None = None) -> list[str]:
    """The ``key=value`` settings of this job's command line (a sweep point's own values), or of ``task``,
    without group choices (already in the name) and without output locations."""
    if task is None:
        try:
            from hydra.core.hydra_config import HydraConfig

            task = list(HydraConfig.get().overrides.task)
        except Exception:  # noqa: BLE001 - not under Hydra (the Python API, the story)
            return []
    out = []
    for item in task:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in groups or "/" in key or is_place(key) or key == "experiment":  # the preset names the experiment
            continue
        out.append(item.lstrip("+~"))
    return out


@dataclass
class StoredRun:
    """A FINISHED run of this point, as a skip needs it: its id and its metrics (logged names)."""

    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)


class Tracker:
    """Context manager around one MLflow run. An exception marks it FAILED, Ctrl-C marks it KILLED."""

    def __init__(self, *, uri: str, experiment: str, artifact_root: str | None = None, run_name: str | None = None) -> None:
        self.uri, self.experiment, self.artifact_root, self.run_name = uri, experiment, artifact_root, run_name
        self.run_id: str | None = None
        self._client = None

    def _call(self, fn, *args, **kwargs):
        """A store operation, retried while SQLite is locked; a full disk is one error naming the store."""
        with writing(self.uri, "the MLflow store"):
            return retry(fn, *args, **kwargs)

    @property
    def client(self):
        if self._client is None:
            with writing(self.uri, "the MLflow store"):
                self._client = self._open()
        return self._client

    def _open(self):
        """The client, with a local SQLite store created whole (``create_store``) and opened in WAL mode."""
        from mlflow.tracking import MlflowClient

        store = _local_store(self.uri)
        if store is None:
            return MlflowClient(tracking_uri=self.uri)
        store.parent.mkdir(parents=True, exist_ok=True)
        # one process at a time creates (migrates) the store; WAL lets readers run beside the writer
        import fcntl
        import sqlite3

        with open(str(store) + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _tables(store):
                create_store(store)
            try:  # MLflow opens (and, if needed, migrates) the store on the client's first use
                client = MlflowClient(tracking_uri=self.uri)
                retry(client.search_experiments, max_results=1)
            except Exception as err:
                if not _interrupted_creation(store, err):
                    raise
                aside = store.with_name(f"{store.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
                # copied, not moved (MLflow's engine stays open on this file), through SQLite: a plain copy's close()
                # would drop this process's locks on it (see _read_tables)
                src, dst = sqlite3.connect(store, timeout=30), sqlite3.connect(aside)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
                    src.close()
                print(f"rbench: the MLflow store {store} was left half-created by an interrupted first run "
                      f"and holds no runs; it is created again (the old file is kept as {aside.name})",
                      file=sys.stderr)
                create_store(store)
                client = MlflowClient(tracking_uri=self.uri)
                retry(client.search_experiments, max_results=1)
            con = sqlite3.connect(store, timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.close()
            fcntl.flock(lock, fcntl.LOCK_UN)
        return client

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            if "mlflow.experimentKind" not in exp.tags:  # made by an older rbench: open it on runs too
                for key, value in EXPERIMENT_TAGS.items():
                    self.client.set_experiment_tag(exp.experiment_id, key, value)
            return exp.experiment_id
        location = None
        if self.artifact_root and (_local_store(self.uri) is not None or self.uri.startswith("file:")):
            location = (Path(self.artifact_root).resolve() / self.experiment).as_uri()
        try:
            # the experiment kind tag makes MLflow 3's UI open on runs, not on the GenAI overview (traces)
            return self.client.create_experiment(self.experiment, artifact_location=location, tags=EXPERIMENT_TAGS)
        except Exception:  # created concurrently by another process
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return exp.experiment_id

    def start(self, tags: Mapping[str, str] | None = None, pid: int | None = None) -> str:
        """Create the run (RUNNING), tagged with this host and ``pid`` (default: this process; the run's own
        process when a helper logs for it), which is how a later run of the point tells a dead run from a live one."""
        import os
        import socket

        tags = {k: str(redact_value(k, redact_text(str(v)))) for k, v in (tags or {}).items()}
        tags.update({"rbench.host": socket.gethostname(), "rbench.pid": str(pid or os.getpid())})
        exp_id = self._call(self.experiment_id)
        # the name comes from the command line's settings, which may hold a URL's password: masked like every value
        name = redact_text(self.run_name) if self.run_name else self.run_name
        run = self._call(self.client.create_run, exp_id, run_name=name, tags=tags)
        self.run_id = run.info.run_id
        return self.run_id

    def _runs(self, fingerprint: str, status: str) -> list[Any]:
        exp = self._call(self.client.get_experiment_by_name, self.experiment)
        if exp is None:
            return []
        return self._call(self.client.search_runs, [exp.experiment_id],
                     filter_string=f"tags.config_fingerprint = '{fingerprint}' and attributes.status = '{status}'",
                     max_results=100)

    def finished_run(self, fingerprint: str) -> StoredRun | None:
        """The FINISHED run of this experiment point (same config fingerprint), if there is one."""
        runs = self._runs(fingerprint, "FINISHED")
        return StoredRun(runs[0].info.run_id, dict(runs[0].data.metrics)) if runs else None

    def flush(self) -> str | None:
        """Every operation so far is done (here at once; see ``benchmarks.tracking.helper``): the run's id."""
        return self.run_id

    def reap_dead(self, fingerprint: str) -> list[str]:
        """Mark KILLED the RUNNING runs of this point whose process (on this host) is gone — what a sweep
        killed with SIGKILL leaves behind, or a run whose FAILED status could not be stored — and say so. Runs of
        live processes (parallel workers) are left alone. Returns their ids."""
        import socket

        reaped = []
        for run in self._runs(fingerprint, "RUNNING"):
            tags = run.data.tags
            pid = tags.get("rbench.pid")
            if tags.get("rbench.host") == socket.gethostname() and pid and pid.isdigit() and not pid_alive(int(pid)):
                self._call(self.client.set_terminated, run.info.run_id, status="KILLED")
                reaped.append(run.info.run_id)
        if reaped:
            print(f"rbench: marked KILLED {len(reaped)} run(s) of this point left RUNNING by a process that is gone "
                  f"(killed, or its status could not be stored): {', '.join(reaped)}", file=sys.stderr)
        return reaped

    def set_view(self, state_of) -> None:  # noqa: ANN001 - a function of the previous view state (or None)
        """The experiment's shared runs-table view (``benchmarks.tracking.layout.view_state``)."""
        exp_id = self._call(self.experiment_id)
        previous = self._call(self.client.get_experiment, exp_id).tags.get(VIEW_TAG)
        self._call(self.client.set_experiment_tag, exp_id, VIEW_TAG, state_of(previous))

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(redact_value(k, redact_text(str(v))))) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._call(self.client.log_batch, self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        for i in range(0, len(items), 500):
            self._call(self.client.log_batch, self.run_id, metrics=items[i : i + 500])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self._call(self.client.log_batch, self.run_id, tags=[RunTag(k, str(redact_value(k, redact_text(str(v)))))
                                                        for k, v in tags.items()])

    def log_dataset(self, name: str, digest: str, source: str, context: str = "eval", **profile: Any) -> None:
        """The dataset as an MLflow dataset input (name, digest, source): the UI's Dataset column."""

        from mlflow.entities import Dataset, DatasetInput, InputTag

        source = redact_text(source)
        ds = Dataset(name=redact_text(name), digest=digest[:36],
                     source_type="local" if "://" not in source else source.split(":", 1)[0],
                     source=json.dumps({"uri": source}), profile=json.dumps(profile) if profile else None)
        self._call(self.client.log_inputs, self.run_id, datasets=[DatasetInput(ds, [InputTag("mlflow.data.context", context)])])

    def log_artifacts(self, folder: Path) -> None:
        """All of ``folder`` or nothing: a copy cut short (a full disk) is removed from a local artifact store,
        so a failed run never shows half its artifacts."""
        try:
            with writing(self._artifact_dir() or self.uri, "the run's artifacts"):
                retry(self.client.log_artifacts, self.run_id, str(folder))
        except BaseException:
            local = self._artifact_dir()
            if local is not None:
                import shutil

                shutil.rmtree(local, ignore_errors=True)
            raise

    def _artifact_dir(self) -> Path | None:
        """The run's artifact folder when it is on this machine's file system."""
        try:
            uri = self.client.get_run(self.run_id).info.artifact_uri
        except Exception:  # noqa: BLE001 - the store itself is unreachable: nothing local to name
            return None
        if uri.startswith("file://"):
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(uri).path))
        return Path(uri) if uri.startswith("/") else None

    def end(self, status: str) -> None:
        if self.run_id is not None:
            self._call(self.client.set_terminated, self.run_id, status=status)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.run_id is None:
            return
        status = "FINISHED" if exc_type is None else "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        try:
            self.end(status)
        except Exception as err:
            if exc_type is None:
                raise
            # an error is already being reported (a full disk, often the store's too): the status is secondary, said
            # in one line, never a traceback; the run stays RUNNING until the next run of this point marks it KILLED
            why = "no space left for the store" if out_of_space(err) else \
                f"the store refused: {' '.join(str(err).split())[:160]}"
            print(f"rbench: MLflow run {self.run_id} could not be marked {status} ({why}); the next run of this point "
                  "marks it KILLED", file=sys.stderr)
            return
        if status == "FAILED":
            print(f"rbench: MLflow run {self.run_id} marked FAILED", file=sys.stderr)
        elif status == "KILLED" and exc is not None:
            exc.rbench_killed_run = self.run_id  # the command line's one closing line names it
