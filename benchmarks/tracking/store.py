"""Runs read back from MLflow through one typed layer: studies ask a :class:`RunRecord` for the option a
config group used (``rec.choice("retriever")``), a resolved setting as a Python value
(``rec.setting("retriever.weights")``), its metrics, and its artifacts (per-query table, JSON lines) —
never raw param strings."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Sequence

from benchmarks.errors import ConfigError
from benchmarks.paths import is_place
from benchmarks.tracking.groups import GROUPS, describe
from benchmarks.tracking.layout import contract_metrics
from benchmarks.tracking.tracker import check_reachable, check_store



class ReportError(RuntimeError):
    pass


def parse_value(text: str | None) -> Any:
    """A logged param back to the value it was logged from (``flatten`` writes lists as JSON and scalars
    with ``str``): ``"[0.6, 0.4]"`` -> list, ``"60"`` -> 60, ``"None"`` -> None, ``"True"`` -> True."""
    if text is None:
        return None
    if text in ("None", "null"):
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class RunRecord:
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int
    status: str = "FINISHED"
    _rows: list[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def dataset(self) -> str:
        """The name the run was labelled with when it started (the loader's, set once; every run since the
        ``dataset`` tag exists has it, a failed one too)."""
        return self.tags.get("dataset", "?")

    @property
    def split(self) -> str:
        return str(self.setting("dataset.split", "test"))

    def choice(self, group: str, default: str = "?") -> str:
        """The option of config group ``group`` this run used (``"bm25"``), ``default`` if not logged."""
        value = self.params.get(group)
        return default if value in (None, "None", "null") else value

    def pipeline(self) -> str:
        """The run's pipeline as a person names it (``chunker=auto + router=rules + versions=decay``)."""
        return describe({g: self.choice(g, "") for g in GROUPS})

    def setting(self, key: str, default: Any = None) -> Any:
        """The resolved config value at dotted ``key`` as a Python value (``default`` if absent or null). A
        ``_target_`` class path is read from the run's ``components`` tag (runs before it: from its params)."""
        if key.endswith("._target_") and key not in self.params:
            try:
                classes = json.loads(self.tags.get("components") or "{}")
            except ValueError:
                classes = {}
            return classes.get(key[: -len("._target_")], default) if isinstance(classes, dict) else default
        value = parse_value(self.params.get(key))
        return default if value is None else value

    def value(self, key: str) -> Any:
        """A group option (``retriever``) or a setting (``retriever.k1``) or a tag: what a filter matches."""
        if key in self.params:
            return self.params[key]
        return self.tags.get(key)


# ------------------------------------------------------------------------------------------ loading
def record_of(run: Any) -> RunRecord:
    """An MLflow run as a :class:`RunRecord` (metrics under the contract's names)."""
    return RunRecord(run.info.run_id, dict(run.data.params), contract_metrics(run.data.metrics), dict(run.data.tags),
                     run.info.start_time, run.info.status)


def load_runs(uri: str, experiment: str, *, unfinished: bool = False) -> tuple[Any, list[RunRecord]]:
    """FINISHED runs of ``experiment`` (``unfinished``: FAILED, KILLED and RUNNING ones too); of several runs
    with one config fingerprint, the latest."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    try:
        check_reachable(uri, key="--tracking-uri", hint="--tracking-uri (or MLFLOW_TRACKING_URI)")
        check_store(uri, write=False, key="--tracking-uri")
    except ConfigError as err:
        raise ReportError(str(err)) from None
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise ReportError(f"no experiment {experiment!r} in {uri}; experiments there: {', '.join(names) or 'none'}")
    runs = client.search_runs([exp.experiment_id], filter_string="" if unfinished else "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=50000)
    latest: dict[str, RunRecord] = {}
    for r in runs:
        key = r.data.tags.get("config_fingerprint", r.info.run_id)
        if key not in latest:
            latest[key] = record_of(r)
    if not latest:
        raise ReportError(f"experiment {experiment!r} has no {'' if unfinished else 'FINISHED '}runs"
                          + ("" if unfinished else " (--include-unfinished lists FAILED and KILLED ones)"))
    return client, sorted(latest.values(), key=lambda rec: rec.start_time)


def per_query_rows(client: Any, rec: RunRecord) -> list[dict[str, str]]:
    """The rows of the run's ``per_query.csv`` for its evaluated split (downloaded once per run)."""
    if rec._rows is None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = download_artifact(client, rec.run_id, "per_query.csv", tmp)
            except Exception as err:
                raise ReportError(f"run {rec.run_id} has no per_query.csv artifact ({err})") from None
            with open(path, encoding="utf-8") as fh:
                rec._rows = [row for row in csv.DictReader(fh) if row["split"] == rec.split]
    return rec._rows


def per_query(client: Any, rec: RunRecord) -> dict[str, dict[str, float]]:
    """``{query_id: {metric: value}}`` for the run's evaluated split."""
    meta = {"query_id", "split", "label", "query_class", "n_relevant"}
    return {row["query_id"]: {k: float(v) for k, v in row.items() if k not in meta} for row in per_query_rows(client, rec)}


def jsonl_artifact(client: Any, rec: RunRecord, name: str) -> list[dict[str, Any]] | None:
    """The rows of a JSON-lines artifact of the run (``decomposition.jsonl``, ``audit.jsonl``); None if absent."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = download_artifact(client, rec.run_id, name, tmp)
        except Exception:
            return None
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


def parse_filter(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise ReportError(f"expected key=value[,key=value], got {text!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def matches(rec: RunRecord, filt: dict[str, str]) -> bool:
    return all(rec.value(k) == v for k, v in filt.items())


def varying_params(records: Sequence[RunRecord]) -> list[str]:
    """Settings that differ between the runs. A group whose option varies is shown by its option
    (``versions=decay``), not by every setting inside it."""
    keys = sorted({k for r in records for k in r.params})
    varying_groups = {g for g in GROUPS if len({r.choice(g) for r in records}) > 1}
    out = []
    for k in keys:
        if is_place(k) or k.endswith("_target_") or k in (*GROUPS, "pipeline"):
            continue
        if k in ("dataset.name", "dataset.path") or k.split(".", 1)[0] in varying_groups and "." in k:
            continue
        if len({r.params.get(k) for r in records}) > 1:
            out.append(k)
    return out


def download_artifact(client: Any, run_id: str, name: str, dst: str) -> str:
    """A run's artifact, downloaded into ``dst``. Through the run's artifact URI when the client's own download
    looks the run up in the default store instead of the client's (MLflow 3.1-3.x: "Run ... not found")."""
    try:
        return client.download_artifacts(run_id, name, dst)
    except Exception as err:  # noqa: BLE001 - MlflowException
        if "not found" not in str(err).lower() or "run" not in str(err).lower():
            raise
        import mlflow.artifacts

        uri = client.get_run(run_id).info.artifact_uri.rstrip("/")
        return mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{name}", dst_path=dst)


def resolve_run_id(client: Any, given: str) -> str:
    """A run id as a user types it: the full id, or a unique prefix of one (the short ids pages and tables show,
    ``5c655744``). ConfigError naming the candidates when a prefix matches several runs, or none."""
    given = given.strip()
    if len(given) == 32:
        return given
    if len(given) < 4 or not all(c in "0123456789abcdef" for c in given.lower()):
        raise ConfigError(f"--run-id {given!r}: give a run id, or at least its first 4 characters (hex)")
    found: list[Any] = []
    experiments = client.search_experiments()
    token = None
    while True:  # every run of every experiment, a page at a time
        page = client.search_runs([e.experiment_id for e in experiments], max_results=5000, page_token=token)
        found += [r for r in page if r.info.run_id.startswith(given.lower())]
        token = page.token
        if not token:
            break
    if len(found) == 1:
        return found[0].info.run_id
    if not found:
        raise ConfigError(f"--run-id {given}: no run's id starts with it")
    shown = ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in found[:10])
    raise ConfigError(f"--run-id {given} matches {len(found)} runs: {shown}; give more of the id")
