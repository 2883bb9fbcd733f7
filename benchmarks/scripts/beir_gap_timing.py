"""Cold vs warm wall time of the ``beir_gap`` sweep, and the warm sweep's encoder calls (must be 0).

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.beir_gap_timing [--datasets scifact,cisi]

Runs ``rbench -m experiment=beir_gap`` twice against a fresh, empty cache folder (cold, then warm), logging
to the ``beir_gap`` MLflow experiment, and writes ``results/beir_gap_timing.{json,md}``. Exits 1 when the
warm sweep encoded anything or built an index.
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


def sweep(extra: list[str], cache: Path) -> tuple[float, int]:
    cmd = [str(Path(sys.executable).parent / "rbench"), "-m", "experiment=beir_gap", f"cache.dir={cache}", *extra]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0, int(t0 * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=None, help="comma list (default: every folder under data_dir/beir)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///results/mlflow.db"))
    parser.add_argument("--out", default="results/beir_gap_timing")
    args = parser.parse_args(argv)
    extra = [f"tracking.uri={args.tracking_uri}"] + ([f"dataset.name={args.datasets}"] if args.datasets else [])
    cache = Path("results/tmp/beir_gap_timing_cache")
    shutil.rmtree(cache, ignore_errors=True)
    cold_s, _ = sweep(extra, cache)
    warm_s, warm_start = sweep(extra, cache)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=args.tracking_uri)
    exp = client.get_experiment_by_name("beir_gap")
    warm_runs = [r for r in client.search_runs([exp.experiment_id]) if r.info.start_time >= warm_start]
    dense = [r for r in warm_runs if r.data.params.get("retriever") == "dense"]
    encoded = int(sum(contract_metrics(r.data.metrics).get("encoded_texts", 0) for r in dense))
    builds = int(sum(contract_metrics(r.data.metrics).get("index_builds", 0) for r in dense))
    ok = bool(dense) and encoded == 0 and builds == 0
    out = {"cold_s": cold_s, "warm_s": warm_s, "speedup": cold_s / warm_s, "warm_runs": len(warm_runs),
           "warm_dense_runs": len(dense), "warm_encoder_calls": encoded, "warm_index_builds": builds,
           "datasets": sorted({r.data.tags.get("dataset", "") for r in warm_runs}), "machine": describe(), "pass": ok}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    Path(args.out + ".md").write_text("\n".join([
        "# beir_gap sweep: cold vs warm cache", "",
        "Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.beir_gap_timing`", "",
        f"Datasets: {', '.join(out['datasets'])} x retriever {{bm25, dense}} ({len(warm_runs)} runs per sweep).", "",
        "| sweep | wall time (s) | encoder calls (texts encoded by dense runs) | index builds |", "|---|---|---|---|",
        f"| cold (empty cache) | {cold_s:.1f} | (all documents and queries) | one per dense run |",
        f"| warm | {warm_s:.1f} | {encoded} | {builds} |", "",
        f"Warm/cold: {warm_s / cold_s:.1%} of the cold time ({cold_s / warm_s:.1f}x faster). "
        f"{'PASS' if ok else 'FAIL'}: the warm sweep made {encoded} encoder calls and {builds} index builds.", "",
        as_markdown(out["machine"]), ""]))
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
