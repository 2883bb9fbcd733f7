"""``rbench-report gate``: the CI gate. The latest FINISHED run of each (dataset, chunker, retriever,
decomposer) of an experiment against a committed baseline file; fails (exit 1) on any metric that fell more
than the tolerance below its baseline. The baseline changes only through ``--update``, never automatically."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Sequence

from benchmarks.tracking.store import ReportError, RunRecord
from benchmarks.studies.multihop import GATED, key_text, latest_by_key
from benchmarks.studies.registry import StudyContext, StudyResult, register
from benchmarks.tracking.provenance import git_commit


def current_values(records: Sequence[RunRecord]) -> dict[str, dict[str, float]]:
    return {key_text(k): {m: float(rec.metrics[m]) for m in GATED if m in rec.metrics}
            for k, rec in latest_by_key(records).items()}


def gate(records: list[RunRecord], baseline_file: str, tolerance: float, *, experiment: str, update: bool = False) -> tuple[bool, str]:
    """(passed, report). With ``update``, (re)write the baseline from the current runs instead."""
    current = current_values(records)
    path = Path(baseline_file)
    if update:

        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"experiment": experiment, "metrics": list(GATED), "updated": _dt.date.today().isoformat(),
                   "git_commit": git_commit(), "runs": current}
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return True, f"baseline {path} written: {len(current)} runs x {len(GATED)} metrics from experiment '{experiment}'"
    if not path.is_file():
        raise ReportError(f"baseline file {path} not found; create it with `rbench-report gate --experiment "
                          f"{experiment} --baseline-file {path} --update`")
    try:
        baseline = json.loads(path.read_text(encoding="utf-8"))["runs"]
    except (ValueError, KeyError) as err:
        raise ReportError(f"{path}: not a gate baseline file ({err})") from None
    failures, lines = [], []
    for key, metrics in baseline.items():
        if key not in current:
            failures.append(f"MISSING {key}: no FINISHED run in experiment '{experiment}'")
            continue
        for m, base in metrics.items():
            now = current[key].get(m)
            if now is None:
                failures.append(f"MISSING {key} {m}: the run did not log it (baseline {base:.4f})")
            elif base - now > tolerance + 1e-9:
                failures.append(f"FAIL {key} {m}: {base:.4f} -> {now:.4f} ({now - base:+.4f}, tolerance {tolerance})")
            else:
                lines.append(f"ok   {key} {m}: {base:.4f} -> {now:.4f} ({now - base:+.4f})")
    extra = sorted(set(current) - set(baseline))
    notes = [f"note {k}: not in the baseline (add it with --update)" for k in extra]
    head = (f"gate: experiment '{experiment}' vs {path} (tolerance {tolerance}): "
            f"{'FAILED' if failures else 'passed'} — {len(lines)} checks ok, {len(failures)} failed")
    return not failures, "\n".join([head, *failures, *notes, *lines])


@register("gate", "fail (exit 1) on any metric more than --tolerance below --baseline-file", prints_only=True)
def run(ctx: StudyContext) -> StudyResult:
    if not ctx.baseline_file:
        raise ReportError("gate needs --baseline-file")
    passed, text = gate(ctx.records, ctx.baseline_file, ctx.tolerance, experiment=ctx.experiment, update=ctx.update)
    return StudyResult(text, [], exit_code=0 if passed else 1)
