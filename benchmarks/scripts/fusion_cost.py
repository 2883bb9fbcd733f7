"""What a fusion sweep costs once its base runs exist (scifact by default).

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.fusion_cost

1. With an empty cache folder, computes the two base runs cold — ``retriever=bm25`` and ``retriever=dense``,
   each scoring test and train queries — and times them.
2. Runs the whole 14-point ``experiment=fusion_sweep`` against that cache and times it.
3. Reads the sweep's runs back from MLflow: their encoder calls and index builds must be 0, and the sweep
   must take < 10% of the cold base-run time. Writes ``results/fusion_cost.{json,md}``; exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.scripts.machine import as_markdown, describe
from benchmarks.tracking.layout import contract_metrics


def timed(cmd: list[str]) -> tuple[float, int]:
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0, int(t0 * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///results/mlflow.db"))
    parser.add_argument("--out", default="results/fusion_cost")
    args = parser.parse_args(argv)
    cache = Path("results/tmp/fusion_cost_cache")
    shutil.rmtree(cache, ignore_errors=True)
    rbench = str(Path(sys.executable).parent / "rbench")
    common = ["dataset=beir", f"dataset.name={args.dataset}", "dataset.tune_split=train", f"cache.dir={cache}",
              f"tracking.uri={args.tracking_uri}", "tracking.experiment=fusion_cost_base"]
    bm25_s, _ = timed([rbench, "retriever=bm25", *common])
    dense_s, _ = timed([rbench, "retriever=dense", *common])
    sweep_s, start = timed([rbench, "-m", "experiment=fusion_sweep", *common[:-1], "tracking.experiment=fusion_cost"])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.tracking_uri)
    exp = client.get_experiment_by_name("fusion_cost")
    runs = [r for r in client.search_runs([exp.experiment_id]) if r.info.start_time >= start]
    encoded = int(sum(contract_metrics(r.data.metrics).get("encoded_texts", 0) for r in runs))
    builds = int(sum(contract_metrics(r.data.metrics).get("index_builds", 0) for r in runs))
    cold = bm25_s + dense_s
    ok = len(runs) == 14 and encoded == 0 and builds == 0 and sweep_s < 0.10 * cold
    out = {"dataset": args.dataset, "cold_bm25_s": bm25_s, "cold_dense_s": dense_s, "cold_total_s": cold,
           "sweep_s": sweep_s, "sweep_share_of_cold": sweep_s / cold, "sweep_runs": len(runs),
           "sweep_encoder_calls": encoded, "sweep_index_builds": builds, "pass": ok, "machine": describe()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    Path(args.out + ".md").write_text("\n".join([
        f"# Fusion sweep cost on {args.dataset}", "",
        "Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.fusion_cost`", "",
        "| step | wall time (s) | encoder calls | index builds |", "|---|---|---|---|",
        f"| base run, BM25, cold (test + train queries) | {bm25_s:.1f} | 0 | 1 |",
        f"| base run, dense, cold (test + train queries) | {dense_s:.1f} | all documents and queries | 1 |",
        f"| fusion sweep, 11 wsum + 3 RRF points ({len(runs)} runs, one process) | {sweep_s:.1f} | {encoded} | {builds} |",
        "", f"The sweep took {sweep_s / cold:.1%} of the cold base-run time (target < 10%). "
        f"{'PASS' if ok else 'FAIL'}.", "", as_markdown(out["machine"]), ""]))
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
