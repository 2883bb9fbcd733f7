"""``rbench experiment=story``: the naive pipeline and the repaired one on the enterprise set, in one job.

Both runs are logged to MLflow (experiment ``story``); then one table per failure-mode label: baseline vs
repaired nDCG@10, evidence coverage@10, span recall within the context budget (chunk_boundary) or the
stale-hit rate (stale_version), and what the retrieval audit says went wrong in the baseline.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.arguments import command_line_overrides
from benchmarks.labels import LABELS, VERDICTS
from benchmarks.paths import runnable
from benchmarks.run.runner import RunResult
from benchmarks.run import runner
from benchmarks.tracking.groups import GROUPS
from benchmarks.audit import audit_mlflow_run
from benchmarks.tracking.store import download_artifact


def per_label(result: RunResult, client: Any) -> dict[str, dict[str, float]]:
    """The run's measures per failure-mode label (:func:`benchmarks.run.runner.breakdown`): computed by this
    job, or, for a run skipped because it had FINISHED before (``rerun=false``), read back from its
    ``summary.json``."""
    if result.by_label or not result.skipped:
        return result.by_label
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rbench-story-") as tmp:
        try:
            path = download_artifact(client, result.run_id, "summary.json", tmp)
            with open(path, encoding="utf-8") as fh:
                return dict(json.load(fh).get("by_label") or {})
        except Exception as err:  # noqa: BLE001 - an older run without it: the table shows dashes
            print(f"rbench: note: run {result.run_id[:8]} has no readable summary.json ({type(err).__name__}); its "
                  "per-label columns are left empty (rerun=true computes them)", flush=True)
            return {}


def table(base: dict[str, dict[str, float]], rep: dict[str, dict[str, float]], verdicts: dict[str, Counter]) -> str:
    def pair(metric: str, label: str) -> str:
        a, b = base.get(label, {}).get(metric, float("nan")), rep.get(label, {}).get(metric, float("nan"))
        return "—" if a != a and b != b else f"{a:.2f} -> {b:.2f}"

    head = f"{'label':16}{'queries':>8}  {'nDCG@10':>13}  {'coverage@10':>13}  {'span/stale':>13}  baseline audit says"
    lines = [head, "-" * (len(head) + 20)]
    either = {**rep, **base}
    for label in [lab for lab in LABELS if lab in either] + [lab for lab in either if lab not in LABELS]:
        special = "stale_hit_rate" if label == "stale_version" else "span_recall_at_budget"
        tag = "stale" if label == "stale_version" else "span"
        said = ", ".join(f"{v} {c}" for v, c in verdicts.get(label, Counter()).most_common()) or "no failures"
        lines.append(f"{label:16}{int(either[label]['n']):>8}  {pair('ndcg_at_10', label):>13}  "
                     f"{pair('evidence_coverage_at_10', label):>13}  {tag + ' ' + pair(special, label):>13}  {said}")
    return "\n".join(lines)


def run_story(cfg: Any) -> float:
    from hydra import compose

    extra = command_line_overrides()
    results = {}
    for name in ("baseline", "repaired"):
        overrides = [*cfg.story[name], *extra, f"tracking.experiment={cfg.tracking.experiment}", f"tracking.run_name='{name} · {{pipeline}} · {{dataset}}'"]
        print(f"\n=== story: {name}: {' '.join(str(o) for o in cfg.story[name])}", flush=True)
        full = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        choices = {g: str(full.hydra.runtime.choices[g]) for g in GROUPS
                   if full.hydra.runtime.choices.get(g) not in (None, "null")}
        choices["experiment"] = "story"
        results[name] = runner.run_experiment(compose(config_name="config", overrides=overrides), choices=choices)
    import os

    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(tracking_uri=cfg.tracking.uri)
    audit = audit_mlflow_run(client, results["baseline"].run_id)
    verdicts: dict[str, Counter] = {}
    for v in audit["verdicts"]:
        verdicts.setdefault(audit["labels"].get(v["query_id"], "all"), Counter())[v["verdict"]] += 1
    base, rep = per_label(results["baseline"], client), per_label(results["repaired"], client)
    bm, rm = results["baseline"].metrics, results["repaired"].metrics
    print("\n" + "=" * 100)
    print("rbench story: the same enterprise questions through a naive pipeline and a repaired one")
    for name in ("baseline", "repaired"):
        earlier = "; FINISHED before, so skipped: rerun=true runs it again" if results[name].skipped else ""
        print(f"  {name}: {' '.join(cfg.story[name])}  (run {results[name].run_id[:8]}{earlier})")
    print()
    print(table(base, rep, verdicts))
    print(f"\nall queries: nDCG@10 {bm['ndcg_at_10']:.3f} -> {rm['ndcg_at_10']:.3f}, coverage@10 "
          f"{bm['evidence_coverage_at_10']:.3f} -> {rm['evidence_coverage_at_10']:.3f}, retrieval calls/query "
          f"{bm.get('retrieval_calls_mean', 1):.2f} -> {rm.get('retrieval_calls_mean', 1):.2f}")
    n_fail = len(audit["verdicts"])
    counts = Counter(v["verdict"] for v in audit["verdicts"])
    print(f"baseline audit: {n_fail} failed queries — " + ", ".join(f"{v} {counts[v]}" for v in VERDICTS if counts.get(v)))
    print(f"details: {runnable('rbench-audit')} --run-id {results['baseline'].run_id} --out results/audit_story  (HTML report)")
    return float(rm["ndcg_at_10"])
