"""Headless-browser screenshots of MLflow pages: the experiment's runs table as ``rbench`` opens it (the URL it
prints: metric and pipeline columns, best first; ``results/mlflow_runs_table.png``) and a run page showing
the run's logged plot and audit report (``results/mlflow_run_page.png``, ``results/mlflow_run_page_audit.png``).

    python -m benchmarks.scripts.mlflow_screenshot [--out results/mlflow_run_page]

It makes a four-point sweep (``rbench -m retriever.k1=0.6,0.9,1.2,1.5``) and one run (``rbench chunker=fixed_64``)
in a temporary store, starts ``mlflow server`` on it, installs
``puppeteer-core`` and ``@sparticuz/chromium`` (a Chromium build shipped through the npm registry) into a
temporary folder with npm, and drives ``benchmarks/scripts/screenshot.mjs``: "Model training" (MLflow 3's
UI opens on its GenAI view by default), the run, its Artifacts tab, then ``metrics_at_k.png`` and
``audit.html``. Needs node and npm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.tracking import layout

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/mlflow_run_page")
    p.add_argument("--table-out", default="results/mlflow_runs_table")
    p.add_argument("--port", type=int, default=5097)
    args = p.parse_args(argv)
    if not shutil.which("node") or not shutil.which("npm"):
        print("needs node and npm", file=sys.stderr)
        return 2
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="rbench-shot-") as tmp:
        store = Path(tmp)
        env = {**os.environ, "RBENCH_HOME": str(store)}
        subprocess.run([str(bin_dir / "rbench"), "-m", "retriever.k1=0.6,0.9,1.2,1.5",
                        "tracking.experiment=enterprise-bm25"], env=env, check=True, capture_output=True)
        subprocess.run([str(bin_dir / "rbench"), "chunker=fixed_64", "tracking.experiment=enterprise-bm25"], env=env,
                       check=True, capture_output=True)
        import mlflow

        client = mlflow.tracking.MlflowClient(f"sqlite:///{store}/results/mlflow.db")
        exp = client.get_experiment_by_name("enterprise-bm25")
        run = client.search_runs([exp.experiment_id], max_results=1, order_by=["attributes.start_time DESC"])[0]
        server = subprocess.Popen([str(bin_dir / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store}/results/mlflow.db",
                                   "--host", "127.0.0.1", "--port", str(args.port), "--workers", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{args.port}"
            for _ in range(60):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=2)
                    break
                except OSError:
                    time.sleep(1)
            node = store / "node"
            node.mkdir()
            subprocess.run(["npm", "install", "--silent", "puppeteer-core@25", "@sparticuz/chromium@153"], cwd=node, check=True)
            shutil.copy(HERE / "screenshot.mjs", node / "screenshot.mjs")
            url = f"{base}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}/artifacts"
            out = Path(args.out).resolve()
            out.parent.mkdir(parents=True, exist_ok=True)
            table = Path(args.table_out).resolve().with_suffix(".png")
            subprocess.run(["node", "screenshot.mjs", layout.table_url(base, exp.experiment_id), str(table)], cwd=node,
                           check=True, env={**os.environ, "SHOT_WIDTH": "1600", "SHOT_HEIGHT": "560"})
            for suffix, artifact in (("", "metrics_at_k.png"), ("_audit", "audit.html")):
                target = out.with_name(out.name + suffix + ".png")
                subprocess.run(["node", "screenshot.mjs", url, str(target), "Model training", run.info.run_name,
                                "Artifacts", artifact], cwd=node, check=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
