"""A sweep as its reader follows it: one progress line per point, and one closing table of all its points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from benchmarks.tracking import layout
from retrievers.infrastructure.progress import fmt_seconds
from retrievers.infrastructure.redact import redact_text, redact_value


#: what this process's current sweep point logged (set by the entry point, written by ``on_job_end``)
_POINT: dict[str, Any] = {}
POINT_FILE = "rbench_point.json"


def note_point(run_id: str, *, skipped: bool) -> None:
    """The MLflow run of the point this process runs: made now, or found FINISHED and skipped (``rerun=false``)."""
    _POINT.clear()
    _POINT.update(run_id=run_id, skipped=skipped)


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.summary``): when a sweep ends, one closing table of every point of the
    sweep — run now, or FINISHED earlier and skipped (a resumed sweep), failed ones marked — with each point's
    nDCG@10 and Recall@100, best first, read back from the store. Each point leaves ``rbench_point.json`` in its
    job folder (``on_job_end``, in whichever process ran it), so the table does not depend on the launcher."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs) -> None:  # noqa: ARG002 - Hydra's signature
        import json

        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hc = HydraConfig.get()
            if hc.mode != RunMode.MULTIRUN:
                return
            record = {"sweep_start": os.environ.get("RBENCH_SWEEP_START", ""), "num": int(hc.job.num),
                      "overrides": [_masked(str(o)) for o in job_return.overrides or []], "status": job_return.status.name, **_POINT}
            Path(hc.runtime.output_dir, POINT_FILE).write_text(json.dumps(record), encoding="utf-8")
        except Exception:  # noqa: BLE001 - the summary is a courtesy; the point's own result stands
            pass
        finally:
            _POINT.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:  # noqa: ARG002 - Hydra's callback signature
        import time

        start = os.environ.get("RBENCH_SWEEP_START") or ""
        try:
            points = sweep_points(Path(str(config.hydra.sweep.dir)), start)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=str(config.tracking.uri))
            runs = {p["run_id"]: client.get_run(p["run_id"]) for p in points if p.get("run_id")}
        except Exception:  # noqa: BLE001 - the summary is a courtesy; the points' own output stands
            return
        if not points:
            return
        ks = [int(k) for k in config.metrics.k]
        first, second = layout.headline(ks, config.metrics.get("headline_k"))[:2]
        elapsed = time.time() - float(start or time.time())
        print("\n".join(summary_lines(points, runs, first, second, elapsed)), flush=True)


def _masked(override: str) -> str:
    """A command-line setting as a record may keep it: a secret-named key's value and any secret in it masked."""
    key, eq, value = override.partition("=")
    return f"{key}={redact_value(key.lstrip('+~'), redact_text(value))}" if eq else redact_text(override)


def sweep_points(folder: Path, start: str) -> list[dict[str, Any]]:
    """The ``rbench_point.json`` records of this sweep (``RBENCH_SWEEP_START`` = ``start``), by job number."""
    import json

    out = []
    for path in folder.glob(f"*/{POINT_FILE}"):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if str(record.get("sweep_start", "")) == start:
            out.append(record)
    return sorted(out, key=lambda r: r.get("num", 0))


def summary_lines(points: list[dict[str, Any]], runs: dict[str, Any], first: str, second: str,
                  elapsed: float) -> list[str]:
    """The closing table: a header counting the points (finished now, finished earlier, failed), then one line
    per point, best first; a point without a FINISHED run last, marked."""
    shown = [layout.label(first), layout.label(second)]
    # a point that completed without one run of its own (experiment=story, beir_full: several) is not a row
    points = [p for p in points if p.get("run_id") or p.get("status") != "COMPLETED"]

    def status(p: dict[str, Any]) -> str:
        run = runs.get(p.get("run_id") or "")
        if p.get("status") != "COMPLETED":
            return "FAILED"
        return run.info.status if run is not None else "FAILED"

    done = [p for p in points if status(p) == "FINISHED"]
    earlier = sum(1 for p in done if p.get("skipped"))
    metric = lambda p, m: layout.contract_metrics(runs[p["run_id"]].data.metrics).get(m, float("nan"))  # noqa: E731
    done.sort(key=lambda p: -metric(p, first) if metric(p, first) == metric(p, first) else float("inf"))
    failed = [p for p in points if status(p) != "FINISHED"]
    parts = [f"{len(done) - earlier} run now", f"{earlier} FINISHED earlier, skipped"] if earlier else []
    lines = [f"\nrbench: sweep done in {fmt_seconds(elapsed)}: {len(done)} of {len(points)} points FINISHED"
             + (f" ({', '.join(parts)})" if parts else "")
             + (f"; {len(failed)} FAILED or KILLED" if failed else "")
             + f"; {shown[0]} and {shown[1]} per point, best first:",
             f"  {shown[0]:>9} {shown[1]:>10}  run"]
    for i, p in enumerate(done):
        run = runs[p["run_id"]]
        lines.append(f"  {metric(p, first):>9.4f} {metric(p, second):>10.4f}  {run.info.run_name} ({p['run_id'][:8]})"
                     + ("  earlier" if p.get("skipped") else "") + ("  <- best" if i == 0 and len(done) > 1 else ""))
    for p in failed:
        run = runs.get(p.get("run_id") or "")
        name = run.info.run_name if run is not None else " ".join(p.get("overrides", [])) or f"point {p.get('num')}"
        lines.append(f"  {'FAILED':>9} {'':>10}  {name}" + (f" ({p['run_id'][:8]})" if run is not None else ""))
    return lines


def sweep_progress() -> str | None:
    """``rbench: sweep point 3/8 (1m20s so far, ETA 2m13s)`` for a point of a multirun; None otherwise."""
    import time

    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        num = int(hc.job.num)
    except Exception:  # noqa: BLE001 - not under Hydra
        return None
    total = os.environ.get("RBENCH_SWEEP_TOTAL") or ""
    start = float(os.environ.get("RBENCH_SWEEP_START") or time.time())
    elapsed = time.time() - start
    eta = ""
    if total.isdigit() and num > 0:
        eta = f", ETA {fmt_seconds(elapsed / num * (int(total) - num))}"
    return f"rbench: sweep point {num + 1}/{total or '?'} ({fmt_seconds(elapsed)} so far{eta})"
