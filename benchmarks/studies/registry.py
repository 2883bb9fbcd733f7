"""The registry of ``rbench-report`` studies: a study is one module in :mod:`benchmarks.studies` that
registers a function under a name; ``rbench-report <name>`` selects it. Modules are discovered, so adding
a study touches no other file. Names are unique (a duplicate raises) and an unknown name is answered with
the closest known one."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarks.evaluation.stats import paired_difference
from benchmarks.tracking.store import ReportError, RunRecord, per_query


@dataclass
class StudyContext:
    """What a study may use: the tracking client, the experiment's FINISHED runs (latest per config
    fingerprint, oldest first) and the command-line options."""

    client: Any
    records: list[RunRecord]
    experiment: str
    out: str | None = None
    baseline: str | None = None
    metrics: str | None = None
    baseline_file: str | None = None
    tolerance: float = 0.01  # gate: the margin a metric may fall by before a significant drop fails
    update: bool = False
    baseline_run: str | None = None  # gate: a run in the store as the baseline
    run: str | None = None  # gate: the run tested against baseline_run
    alpha: float = 0.05  # gate: the significance level
    summary: str | None = None  # gate: a Markdown file appended to (a CI job summary)
    fmt: str = "md"


@dataclass
class StudyResult:
    text: str
    table: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0


@dataclass(frozen=True)
class Study:
    name: str
    help: str
    run: Callable[[StudyContext], StudyResult]
    prints_only: bool = False  # writes no files (the gate)


_STUDIES: dict[str, Study] = {}


def register(name: str, help: str, *, prints_only: bool = False) -> Callable[[Callable], Callable]:
    def decorate(fn: Callable[[StudyContext], StudyResult]) -> Callable[[StudyContext], StudyResult]:
        if name in _STUDIES and _STUDIES[name].run is not fn:
            raise ValueError(f"study {name!r} registered twice ({_STUDIES[name].run.__module__} and {fn.__module__})")
        _STUDIES[name] = Study(name, help, fn, prints_only)
        return fn

    return decorate


def studies() -> dict[str, Study]:
    """Every study, discovered from the modules of :mod:`benchmarks.studies`."""
    import importlib
    import pkgutil
    from pathlib import Path

    folder = Path(__file__).resolve().parent  # the studies package, found by path: this module imports no study
    for module in (m for m in pkgutil.iter_modules([str(folder)]) if m.name != "registry"):
        importlib.import_module(f"benchmarks.studies.{module.name}")
    return dict(sorted(_STUDIES.items()))


def get(name: str) -> Study:
    known = studies()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ReportError(f"unknown study {name!r}{hint} Studies: {', '.join(known)}")
    return known[name]


def compare(client: Any, base: RunRecord, rec: RunRecord, metric: str) -> tuple[float, float, int]:
    """(mean difference rec - base, p-value, paired queries) on the queries both runs scored (their
    ``per_query.csv`` artifacts, read back from the store)."""
    return paired_difference(per_query(client, base), per_query(client, rec), metric)
