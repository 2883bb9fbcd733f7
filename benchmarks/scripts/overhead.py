"""Fixed cost per run: wall times of whole ``rbench`` commands against #14's targets, for ``results/overhead.md``.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.overhead [--repeats 3] [--out results/overhead]

Each command runs in a fresh process, in a temporary folder with its own cache and MLflow store:
``rbench --help``; the default ``rbench`` warm (after one run that fills the cache); ``rbench
experiment=story`` warm; and the first BM25 run on a scifact-sized BEIR folder this machine has never seen
(scifact copied under a new name, empty cache). The median of ``--repeats`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"help": 1.0, "warm_default": 3.0, "warm_story": 15.0, "first_bm25_new_folder": 10.0}


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"overhead: {' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=os.environ.get("RBENCH_DATA_DIR", "../shared/data"))
    parser.add_argument("--out", default="results/overhead")
    args = parser.parse_args(argv)
    from benchmarks.scripts.machine import as_markdown, describe, write_keeping_reading

    rbench = str(Path(sys.executable).parent / "rbench")
    work = Path(tempfile.mkdtemp(prefix="rbench-overhead-"))
    env = {**os.environ, "RBENCH_DATA_DIR": str(Path(args.data_dir).resolve())}
    common = [f"tracking.uri=sqlite:///{work}/mlflow.db", f"tracking.artifact_root={work}/art", f"cache.dir={work}/cache",
              f"hydra.run.dir={work}/hydra"]
    times: dict[str, list[float]] = {}
    times["help"] = [timed([rbench, "--help"], work, env) for _ in range(args.repeats)]
    timed([rbench, *common], work, env)  # fills the cache and creates the store
    times["warm_default"] = [timed([rbench, *common, "rerun=true"], work, env) for _ in range(args.repeats)]
    times["warm_default_no_visuals"] = [timed([rbench, *common, "rerun=true", "tracking.visuals=false"], work, env)
                                        for _ in range(args.repeats)]
    timed([rbench, "experiment=story", *common], work, env)
    # rerun=true: both pipelines computed again on the warm cache (rerun=false would skip them: warm_story_skipped)
    times["warm_story"] = [timed([rbench, "experiment=story", *common, "rerun=true"], work, env)
                           for _ in range(max(1, args.repeats - 1))]
    times["warm_story_skipped"] = [timed([rbench, "experiment=story", *common], work, env)]
    times["first_bm25_new_folder"] = []
    for i in range(args.repeats):
        folder = work / f"unseen-{i}"
        shutil.copytree(Path(args.data_dir) / "beir" / "scifact", folder)
        times["first_bm25_new_folder"].append(timed(
            [rbench, "dataset=beir", f"dataset.path={folder}", *common[:2], f"cache.dir={work}/cold-{i}",
             f"hydra.run.dir={work}/hydra", "rerun=true"], work, env))  # the same content: not skipped
    med = {k: statistics.median(v) for k, v in times.items()}
    machine = describe()
    out = {"median_s": med, "runs_s": times, "targets_s": TARGETS, "machine": machine}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    names = {"help": "`rbench --help`", "warm_default": "warm `rbench` (default: BM25, enterprise set)",
             "warm_default_no_visuals": "the same with `tracking.visuals=false` (no per-run plots or audit page)",
             "warm_story": "warm `rbench experiment=story rerun=true` (both pipelines computed again)",
             "warm_story_skipped": "warm `rbench experiment=story` (both runs FINISHED before: skipped, table read back)",
             "first_bm25_new_folder":
             "first BM25 run on a new scifact-sized BEIR folder (cold cache)"}
    lines = ["# Fixed cost per run", "", f"Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.overhead "
             f"--repeats {args.repeats}`", "", "| what | median wall s | target s | met? |", "|---|---|---|---|"]
    for k, name in names.items():
        if k not in TARGETS:
            lines.append(f"| {name} | {med[k]:.2f} | — | (for comparison) |")
            continue
        lines.append(f"| {name} | {med[k]:.2f} | <= {TARGETS[k]:g} | {'yes' if med[k] <= TARGETS[k] else f'no (+{med[k] - TARGETS[k]:.1f} s)'} |")
    lines += ["", "Each figure is a whole process (interpreter start, imports, config, data, retrieval, evaluation, "
              "MLflow logging, and each run's plots and audit page).", "", as_markdown(machine), ""]
    write_keeping_reading(args.out + ".md", "\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
