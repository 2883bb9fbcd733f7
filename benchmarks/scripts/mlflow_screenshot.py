"""Headless-browser screenshots of MLflow pages: the experiment's runs table as ``rbench`` opens it (the URL it
prints: metric and pipeline columns, best first; ``results/mlflow_runs_table.png``) and a run page showing
the run's logged plot and audit report (``results/mlflow_run_page.png``, ``results/mlflow_run_page_audit.png``).

    python -m benchmarks.scripts.mlflow_screenshot [--out results/mlflow_run_page]
    python -m benchmarks.scripts.mlflow_screenshot --story [--story-out results/mlflow_story]

``--story`` runs the README's main job (``rbench experiment=story``) in a temporary store instead and shoots, at
1600x1000 as a reader's browser shows them, the story's runs table (``<story-out>_runs_table.png``: the headline and
failure-mode columns — span recall at budget, stale hits, split evidence — beside the run names) and the baseline
run's page (``<story-out>_run_page.png``: its description with the same measures and its metrics).

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
    p.add_argument("--story", action="store_true", help="shoot the story's runs table and run page instead")
    p.add_argument("--story-out", default="results/mlflow_story")
    args = p.parse_args(argv)
    if not shutil.which("node") or not shutil.which("npm"):
        print("needs node and npm", file=sys.stderr)
        return 2
    if args.story:
        return story_shots(Path(args.story_out), args.port)
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


def serve(db: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on loopback over the SQLite store ``db``, answering /health."""
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen([str(bin_dir / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(90):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return server
        except OSError:
            time.sleep(1)
    server.terminate()
    raise SystemExit("mlflow server did not answer in 90 s")


def story_shots(out: Path, port: int) -> int:
    """The story's runs table and its baseline run's page, 1600x1000, as ``rbench experiment=story`` leaves them."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="rbench-shot-") as tmp:
        store = Path(tmp)
        env = {**os.environ, "RBENCH_HOME": str(store)}
        subprocess.run([str(bin_dir / "rbench"), "experiment=story"], env=env, check=True, capture_output=True, cwd=tmp)
        import mlflow

        client = mlflow.tracking.MlflowClient(f"sqlite:///{store}/results/mlflow.db")
        exp = client.get_experiment_by_name("story")
        (baseline,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name.startswith("baseline")]
        server = serve(store / "results" / "mlflow.db", port)
        try:
            base = f"http://127.0.0.1:{port}"
            node = store / "node"
            node.mkdir()
            subprocess.run(["npm", "install", "--silent", "puppeteer-core@25", "@sparticuz/chromium@153"], cwd=node, check=True)
            shutil.copy(HERE / "screenshot.mjs", node / "screenshot.mjs")
            out = out.resolve()
            out.parent.mkdir(parents=True, exist_ok=True)
            size = {"SHOT_WIDTH": "1600", "SHOT_HEIGHT": "1000"}
            subprocess.run(["node", "screenshot.mjs", layout.table_url(base, exp.experiment_id),
                            str(out.with_name(out.name + "_runs_table.png"))], cwd=node, check=True, env={**os.environ, **size})
            subprocess.run(["node", "screenshot.mjs", layout.run_url(base, exp.experiment_id, baseline.info.run_id),
                            str(out.with_name(out.name + "_run_page.png"))], cwd=node, check=True, env={**os.environ, **size})
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
