"""A sweep as its reader follows it: one progress line per point, and one closing table of its points."""

from __future__ import annotations

import os

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from benchmarks.tracking import layout
from retrievers.infrastructure.progress import fmt_seconds


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks.summary``): when a sweep ends, one closing table of its points — each
    point's nDCG@10 and Recall@100, best first — read back from the store, instead of leaving the reader to
    scroll through a table per point."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:  # noqa: ARG002 - Hydra's callback signature
        import time

        start = float(os.environ.get("RBENCH_SWEEP_START") or 0)
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=str(config.tracking.uri))
            exp = client.get_experiment_by_name(str(config.tracking.experiment))
            runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.start_time >= {int(start * 1000)}",
                                      max_results=5000) if exp is not None and start else []
        except Exception:  # noqa: BLE001 - the summary is a courtesy; the points' own output stands
            return
        done = [r for r in runs if r.info.status == "FINISHED"]
        if not runs:
            return
        ks = [int(k) for k in config.metrics.k]
        first, second = layout.headline(ks, config.metrics.get("headline_k"))[:2]
        shown = [layout.label(first), layout.label(second)]
        done.sort(key=lambda r: -layout.contract_metrics(r.data.metrics).get(first, float("-inf")))
        lines = [f"\nrbench: sweep done in {fmt_seconds(time.time() - start)}: {len(done)} of {len(runs)} points FINISHED"
                 + (f" ({len(runs) - len(done)} FAILED or KILLED)" if len(done) < len(runs) else "")
                 + f"; {shown[0]} and {shown[1]} per point, best first:",
                 f"  {shown[0]:>9} {shown[1]:>10}  run"]
        for i, r in enumerate(done):
            m = layout.contract_metrics(r.data.metrics)
            lines.append(f"  {m.get(first, float('nan')):>9.4f} {m.get(second, float('nan')):>10.4f}  "
                         f"{r.info.run_name} ({r.info.run_id[:8]})" + ("  <- best" if i == 0 and len(done) > 1 else ""))
        print("\n".join(lines), flush=True)


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
