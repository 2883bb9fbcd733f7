"""``rbench-report gate``: a CI gate for retrieval, on a team's own questions as on the multi-hop slice.

The latest FINISHED run of each point (dataset, chunker, retriever, decomposer) of an experiment is paired,
query by query, with its baseline — the per-query values of a committed baseline file (``--baseline-file``,
written by ``--update``) or of a run in the store (``--baseline-run``) — and each gated metric is tested with the
project's paired test (:func:`benchmarks.evaluation.stats.paired_test`: permutation test for graded metrics,
exact McNemar for the binary coverage). A metric FAILS only when it fell by more than ``--margin`` **and** the
drop is significant (p < ``--alpha``): on 50-200 questions a fixed tolerance alone is noise. A drop beyond the
margin that is not significant is reported, and passes. The result is printed and written as Markdown for a CI
job summary (``--summary``, default ``$GITHUB_STEP_SUMMARY`` when set). The baseline changes only through
``--update``, never automatically."""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.evaluation.stats import ALPHA, MCNEMAR, PERMUTATION, fmt_p, is_binary, markdown, paired_test
from benchmarks.studies.multihop import GATED, key_text, latest_by_key, run_key
from benchmarks.studies.registry import StudyContext, StudyResult, register
from benchmarks.tracking.provenance import git_commit
from benchmarks.errors import ConfigError
from benchmarks.tracking.store import ReportError, RunRecord, per_query, record_of, resolve_run_id
from retrievers.infrastructure.safe_write import write_text

#: the baseline file's format: per point, the query ids and each gated metric's per-query values
FORMAT = 2
PLACES = 6


@dataclass
class Check:
    point: str
    metric: str
    base: float  # the baseline's mean over the paired queries
    now: float
    p: float
    n: int  # paired queries
    status: str  # ok | worse | FAIL | MISSING
    note: str = ""

    @property
    def delta(self) -> float:
        return self.now - self.base


def per_query_values(client: Any, rec: RunRecord, metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{metric: {query_id: value}}`` of a run's evaluated split, for the gated metrics it logged."""
    rows = per_query(client, rec)
    return {m: {q: v[m] for q, v in rows.items() if m in v} for m in metrics if any(m in v for v in rows.values())}


def baseline_payload(client: Any, records: Sequence[RunRecord], experiment: str) -> dict[str, Any]:
    """The baseline file's content: per point, its run, query ids and the per-query value of each gated metric."""
    runs = {}
    for key, rec in latest_by_key(records).items():
        values = per_query_values(client, rec, GATED)
        queries = sorted(set().union(*(v.keys() for v in values.values()))) if values else []
        runs[key_text(key)] = {"run_id": rec.run_id, "queries": queries,
                               "values": {m: [round(v.get(q, float("nan")), PLACES) for q in queries]
                                          for m, v in values.items()}}
    return {"experiment": experiment, "format": FORMAT, "metrics": list(GATED), "updated": _dt.date.today().isoformat(),
            "git_commit": git_commit(), "runs": runs}


def baseline_json(payload: Mapping[str, Any]) -> str:
    """The baseline file's text: one line per point's query ids and per metric's values, so a changed baseline
    reads as a short diff."""
    head = {k: v for k, v in payload.items() if k != "runs"}
    lines = ["{", *(f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()), ' "runs": {']
    points = list(payload["runs"].items())
    for i, (point, entry) in enumerate(points):
        lines += [f"  {json.dumps(point)}: {{", f'   "run_id": {json.dumps(entry["run_id"])},',
                  f'   "queries": {json.dumps(entry["queries"])},', '   "values": {']
        values = list(entry["values"].items())
        lines += [f"    {json.dumps(m)}: {json.dumps(v)}" + ("," if j < len(values) - 1 else "") for j, (m, v) in enumerate(values)]
        lines += ["   }", "  }" + ("," if i < len(points) - 1 else "")]
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def read_baseline(path: Path, experiment: str) -> dict[str, dict[str, dict[str, float]]]:
    """``{point: {metric: {query_id: value}}}`` from a baseline file; ReportError naming the file otherwise."""
    if not path.is_file():
        raise ReportError(f"baseline file {path} not found; create it with `rbench-report gate --experiment "
                          f"{experiment} --baseline-file {path} --update`")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        runs = payload["runs"]
    except (ValueError, KeyError, TypeError) as err:
        raise ReportError(f"{path}: not a gate baseline file ({err})") from None
    if payload.get("format") != FORMAT:
        raise ReportError(f"{path}: holds each metric's mean only (a baseline written before the gate tested "
                          f"per-query differences); rewrite it from the runs it should hold with --update")
    out = {}
    for point, entry in runs.items():
        try:
            queries = entry["queries"]
            out[point] = {m: dict(zip(queries, map(float, vals), strict=True)) for m, vals in entry["values"].items()}
        except (KeyError, TypeError, ValueError) as err:
            raise ReportError(f"{path}: point {point!r} is malformed ({type(err).__name__}: {err})") from None
    return out


def compare(point: str, base: Mapping[str, Mapping[str, float]], now: Mapping[str, Mapping[str, float]], *,
            margin: float, alpha: float) -> list[Check]:
    """One :class:`Check` per gated metric of the baseline, paired on the queries both scored."""
    out = []
    for metric, b in base.items():
        n_ = now.get(metric)
        if n_ is None:
            out.append(Check(point, metric, _mean(b.values()), float("nan"), float("nan"), 0, "MISSING",
                             "the run did not log it"))
            continue
        common = sorted(set(b) & set(n_))
        if not common:
            out.append(Check(point, metric, _mean(b.values()), _mean(n_.values()), float("nan"), 0, "MISSING",
                             "no query in common with the baseline"))
            continue
        xs, ys = [b[q] for q in common], [n_[q] for q in common]
        p = paired_test(metric, xs, ys)
        check = Check(point, metric, _mean(xs), _mean(ys), p, len(common), "ok")
        if check.delta < -margin - 1e-12:
            check.status = "FAIL" if p < alpha else "worse"
        lost = len(set(b) - set(n_))
        if lost:
            check.note = f"{lost} baseline queries not scored now"
        out.append(check)
    return out


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def gate(client: Any, records: list[RunRecord], *, experiment: str, baseline_file: str | None = None,
         baseline_run: str | None = None, run: str | None = None, margin: float = 0.01, alpha: float = ALPHA,
         update: bool = False) -> tuple[bool, str, str]:
    """(passed, the printed report, the Markdown summary). Against a baseline file: every point it holds, by the
    point's latest run. Against ``baseline_run``: the run ``run`` (default: the experiment's latest other FINISHED run
    on the baseline's dataset). With ``update``, (re)write the baseline file from the current runs instead."""
    latest = latest_by_key(records)
    if update:
        if not baseline_file:
            raise ReportError("--update writes --baseline-file: give one")
        path = Path(baseline_file)
        payload = baseline_payload(client, records, experiment)
        write_text(path, baseline_json(payload), what="the gate's baseline")
        text = (f"baseline {path} written: {len(payload['runs'])} points x {len(GATED)} metrics, per query, from "
                f"experiment '{experiment}'")
        return True, text, text
    if baseline_run:
        base_rec = _baseline_record(client, baseline_run)
        if run:
            rec = _baseline_record(client, run, flag="--run")
        else:  # the experiment's latest FINISHED run on the baseline's dataset, the baseline aside
            others = [r for r in records if r.run_id != base_rec.run_id and r.dataset == base_rec.dataset]
            if not others:
                raise ReportError(f"experiment '{experiment}' has no other FINISHED run on {base_rec.dataset} to test "
                                  f"against baseline run {base_rec.run_id[:8]}")
            rec = max(others, key=lambda r: r.start_time)
        against = f"run {base_rec.run_id[:8]} ({key_text(run_key(base_rec))})"
        checks = compare(f"run {rec.run_id[:8]} ({key_text(run_key(rec))})", per_query_values(client, base_rec, GATED),
                         per_query_values(client, rec, GATED), margin=margin, alpha=alpha)
        extra: list[str] = []
    elif baseline_file:
        path = Path(baseline_file)
        base = read_baseline(path, experiment)
        current = {key_text(k): rec for k, rec in latest.items()}
        checks = []
        for point, metrics in base.items():
            if point not in current:
                checks.append(Check(point, "*", float("nan"), float("nan"), float("nan"), 0, "MISSING",
                                    f"no FINISHED run in experiment '{experiment}'"))
                continue
            checks += compare(point, metrics, per_query_values(client, current[point], list(metrics)),
                              margin=margin, alpha=alpha)
        extra = sorted(set(current) - set(base))
        against = str(path)
    else:
        raise ReportError("gate needs --baseline-file (a committed baseline) or --baseline-run (a run in the store)")
    failed = [c for c in checks if c.status in ("FAIL", "MISSING")]
    passed = not failed
    return passed, _text(checks, extra, experiment, against, margin, alpha, passed), \
        _markdown(checks, extra, experiment, against, margin, alpha, passed)



def _baseline_record(client: Any, given: str, flag: str = "--baseline-run") -> RunRecord:
    """The run ``--baseline-run`` (or ``--run``) names (a full id or a unique prefix), FINISHED; it may be an earlier run of a
    point the experiment has rerun since (the reports read the latest run per config, the gate its baseline)."""
    try:
        run = client.get_run(resolve_run_id(client, given))
    except ConfigError as err:
        raise ReportError(str(err).replace("--run-id", flag)) from None
    if run.info.status != "FINISHED":
        raise ReportError(f"{flag} {given}: run {run.info.run_id[:8]} is {run.info.status}, not FINISHED")
    return record_of(run)


def _row(c: Check) -> list[str]:
    test = MCNEMAR.split(" (")[0] if is_binary(c.metric) else "permutation"
    return [c.status, c.point, c.metric, f"{c.base:.4f}", f"{c.now:.4f}", f"{c.delta:+.4f}", fmt_p(c.p), str(c.n),
            test if c.n else "", c.note]


def _text(checks: list[Check], extra: list[str], experiment: str, against: str, margin: float, alpha: float,
          passed: bool) -> str:
    failed = [c for c in checks if c.status in ("FAIL", "MISSING")]
    worse = [c for c in checks if c.status == "worse"]
    head = (f"gate: experiment '{experiment}' vs {against} (fails on a drop > {margin} with p < {alpha}): "
            f"{'passed' if passed else 'FAILED'} — {len(checks) - len(failed)} checks ok, {len(failed)} failed"
            + (f", {len(worse)} worse by more than the margin but not significantly" if worse else ""))
    lines = [head]
    order = {"FAIL": 0, "MISSING": 1, "worse": 2, "ok": 3}
    for c in sorted(checks, key=lambda c: order[c.status]):
        if c.metric == "*":
            lines.append(f"MISSING {c.point}: {c.note}")
            continue
        lines.append(f"{c.status:<5} {c.point} {c.metric}: {c.base:.4f} -> {c.now:.4f} ({c.delta:+.4f}, p {fmt_p(c.p)}, "
                     f"{c.n} queries)" + (f"; {c.note}" if c.note else ""))
    lines += [f"note {k}: not in the baseline (add it with --update)" for k in extra]
    return "\n".join(lines)


def _markdown(checks: list[Check], extra: list[str], experiment: str, against: str, margin: float, alpha: float,
              passed: bool) -> str:
    failed = [c for c in checks if c.status in ("FAIL", "MISSING")]
    worse = [c for c in checks if c.status == "worse"]
    shown = failed + worse  # the rows a reviewer must read; the rest counted
    lines = [f"### Retrieval gate: {'✅ passed' if passed else '❌ failed'} — `{experiment}` vs `{against}`", "",
             f"{len(checks)} checks: {len(checks) - len(failed) - len(worse)} ok, {len(worse)} worse by more than "
             f"{margin} but not significantly (p ≥ {alpha}), {len(failed)} failed (a drop > {margin} with p < {alpha}, "
             "or missing).", ""]
    if shown:
        lines.append(markdown(["status", "point", "metric", "baseline", "now", "Δ", "p", "queries", "test", "note"],
                              [_row(c) if c.metric != "*" else [c.status, c.point, "", "", "", "", "", "", "", c.note]
                               for c in shown]))
        lines.append("")
    lines += [f"Tests: {PERMUTATION} for graded metrics; {MCNEMAR} for coverage. The baseline changes only "
              "through `rbench-report gate --update`."]
    if extra:
        lines += ["", "Not in the baseline: " + ", ".join(f"`{k}`" for k in extra) + "."]
    return "\n".join(lines) + "\n"


@register("gate", "CI gate: fail (exit 1) on a significant per-query drop beyond --margin against --baseline-file, or "
          "of --run against --baseline-run", prints_only=True)
def run(ctx: StudyContext) -> StudyResult:
    passed, text, summary = gate(ctx.client, ctx.records, experiment=ctx.experiment, baseline_file=ctx.baseline_file,
                                 baseline_run=ctx.baseline_run, run=ctx.run, margin=ctx.tolerance, alpha=ctx.alpha,
                                 update=ctx.update)
    target = ctx.summary or os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:  # a CI job summary is appended to, step after step
            fh.write(summary + "\n")
    return StudyResult(text, [], exit_code=0 if passed else 1)
