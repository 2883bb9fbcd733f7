"""Reliability figures for ``results/reliability.md``: the bad-input battery and a soak test.

    python -m benchmarks.scripts.reliability [--out results/reliability] [--processes 8] [--kill 3] [--seed 0]
        [--first-runs 12]

1. The battery: runs ``tests/test_reliability.py`` (bad data, bad config, reader fuzz, cache corruption,
   leftovers, signals, untrusted configs, secrets), ``tests/test_hostile.py`` (bounded reading under a memory
   limit, pipes/devices/links in folders, broken surroundings, one reading of ids and values, counts that
   add up, trace and folder fuzzers) and ``tests/test_down_server.py`` (a tracking server that is down or
   silent), and counts their cases from pytest's JUnit report.
2. The soak: ``--processes`` concurrent ``rbench`` processes share one cache folder and one SQLite MLflow
   store (BM25 points and static-model dense points that share one embeddings entry); ``--kill`` of them,
   chosen at random, get SIGKILL or SIGTERM at a random moment. The killed points are then launched again
   (resumable sweeps reap dead RUNNING runs). Checked: every point FINISHED exactly once, no run left
   RUNNING, every killed run marked KILLED, every cache entry intact (checksums), no temp folder left.
3. First runs: ``--first-runs`` times, a first ``rbench`` on a fresh store and cache gets SIGINT, SIGTERM or
   SIGKILL at a random moment of its first seconds (start-up, store creation, the run), and is then launched
   again. Checked: the relaunch finishes its run (an interrupted store creation once broke the store for good).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# scifact (5,183 documents, 300 queries): long enough that a signal lands mid-run; the static-model points
# share one embeddings entry, so they contend for the same cache claim
_SCIFACT = ["dataset=beir", "dataset.name=scifact"]
POINTS = [[*_SCIFACT, "retriever=bm25", f"retriever.k1={k1}"] for k1 in (0.6, 0.9, 1.2, 1.5)] + \
         [[*_SCIFACT, "retriever=dense_static", f"retriever.index.kind={ix}"] for ix in ("flat", "hnsw")] + \
         [[*_SCIFACT, "retriever=dense_static", "retriever.index.kind=hnsw", f"retriever.index.hnsw_ef_search={ef}"] for ef in (16, 64)]


BATTERY = ("test_reliability.py", "test_hostile.py", "test_down_server.py")
# test_hostile.py's cases by what they try (name prefixes)
HOSTILE_GROUPS = {
    "bounded reading (long lines, big documents, gzip bombs, deep JSON, YAML bombs; memory-limited subprocess)":
        ("test_a_line", "test_a_document", "test_a_gzip", "test_json_nested", "test_deep_json", "test_no_reader"),
    "document folders (pipes, devices, links leaving the folder, unsupported files)": ("test_a_hostile_folder", "test_a_folder"),
    "broken surroundings (non-SQLite store, unwritable home/cache/run folder, --out under a file, store failing mid-run)":
        ("test_a_tracking_uri", "test_rbench_home", "test_a_read_only", "test_out_under", "test_a_store_failing"),
    "one reading of ids and values (ids, qrels columns, booleans, dates, version cycles, numeric ranges, sweeps)":
        ("test_ids", "test_a_qrels", "test_typed", "test_a_string_false", "test_supersedes", "test_version_cycles",
         "test_audit_numeric", "test_other_tools", "test_new_numeric", "test_every_sweep", "test_malformed_otlp"),
    "counts that add up": ("test_hotpotqa_counts", "test_the_summary_counts"),
    "fuzzers (traces: OTLP and span shapes; document folders: files, links, front matter)": ("test_trace_reader_fuzz",
                                                                                             "test_document_folder_fuzz"),
    "round 3: lone surrogates, non-UTF-8 file names, a tab inside a qrels id, keys nothing reads, readers that would "
    "create the store, engines and indexes that cannot work": ("test_a_lone_surrogate", "test_a_file_name_that_is_not_utf8", "test_a_qrels_line_with_a_tab",
                         "test_a_key_no_component_reads", "test_a_reader_never_creates",
                         "test_a_dataset_name_the_generated_set", "test_a_key_under_a_group",
                         "test_an_engine_or_index_that_cannot_work"),
}


def battery(junit: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "slow or not slow",  # every case
           *(str(ROOT / "tests" / f) for f in BATTERY), f"--junitxml={junit}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    cases = [c for suite in suites for c in suite.findall("testcase")]

    def status(c: ET.Element) -> str:
        return "failed" if c.find("failure") is not None or c.find("error") is not None else \
            "skipped" if c.find("skipped") is not None else "passed"

    def of(fname: str) -> list[ET.Element]:
        return [c for c in cases if c.get("classname", "").endswith(fname.removesuffix(".py"))]

    names = [c.get("name", "") for c in cases]
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in cases if status(c) == "failed"]
    hostile = of("test_hostile.py")
    groups = {g: [sum(c.get("name", "").startswith(prefixes) for c in hostile),
                  sum(c.get("name", "").startswith(prefixes) and status(c) == "passed" for c in hostile)]
              for g, prefixes in HOSTILE_GROUPS.items()}
    return {"cases": len(cases), "passed": sum(status(c) == "passed" for c in cases),
            "skipped": sum(status(c) == "skipped" for c in cases), "failed": len(failed), "failed_names": failed,
            "exit": res.returncode, "by_file": {f: len(of(f)) for f in BATTERY},
            "bad_data": sum(n.startswith("test_bad_beir_data") for n in names),
            "bad_config": sum(n.startswith("test_bad_config") for n in names),
            "hostile_groups": groups, "down_server": [len(of("test_down_server.py")),
                                                      sum(status(c) == "passed" for c in of("test_down_server.py"))]}


def launch(point: list[str], work: Path, i: int, attempt: int) -> subprocess.Popen:
    rbench = str(Path(sys.executable).parent / "rbench")
    args = [rbench, *point, f"tracking.uri=sqlite:///{work}/mlflow.db", f"tracking.artifact_root={work}/art",
            "tracking.experiment=soak", f"cache.dir={work}/cache", f"hydra.run.dir={work}/hydra/{i}-{attempt}"]
    log = open(work / f"p{i}-{attempt}.log", "w")
    import os

    env = {**os.environ, "RBENCH_DATA_DIR": str(Path(os.environ.get("RBENCH_DATA_DIR", ROOT.parent / "shared" / "data")).resolve())}
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=work, env=env)


def running_pid(work: Path, pid: int) -> bool:
    """Whether process ``pid`` has a RUNNING run in the soak's store."""
    try:
        db = sqlite3.connect(work / "mlflow.db", timeout=1)
        row = db.execute("select count(*) from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'rbench.pid' "
                         "where r.status = 'RUNNING' and t.value = ?", (str(pid),)).fetchone()
        db.close()
        return bool(row and row[0])
    except sqlite3.Error:
        return False


def soak(n: int, n_kill: int, seed: int) -> dict:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="rbench-soak-"))
    points = (POINTS * ((n + len(POINTS) - 1) // len(POINTS)))[:n]
    t0 = time.time()
    procs = {i: launch(p, work, i, 0) for i, p in enumerate(points)}
    victims = rng.sample(sorted(procs), n_kill)
    # each victim is killed at a random moment after its MLflow run has started (mid-retrieval or mid-logging)
    signals = [signal.SIGKILL, signal.SIGTERM]
    plan = {i: (rng.uniform(0.0, 1.5), signals[n % 2]) for n, i in enumerate(victims)}  # both kinds, always
    started: dict[int, float] = {}
    killed: dict[int, str] = {}
    while any(p.poll() is None for p in procs.values()):
        for i, (delay, sig) in plan.items():
            if i in killed or procs[i].poll() is not None:
                continue
            if i not in started and running_pid(work, procs[i].pid):
                started[i] = time.time()
            if i in started and time.time() - started[i] >= delay:
                procs[i].send_signal(sig)
                killed[i] = signal.Signals(sig).name
        time.sleep(0.2)
    first_codes = {i: p.returncode for i, p in procs.items()}
    relaunched = {i: launch(points[i], work, i, 1) for i in killed}
    for p in relaunched.values():
        p.wait()
    wall = time.time() - t0
    db = sqlite3.connect(work / "mlflow.db")
    rows = db.execute("select r.run_uuid, r.status, t.value from runs r join tags t on t.run_uuid = r.run_uuid "
                      "and t.key = 'config_fingerprint'").fetchall()
    by_point: dict[str, list[str]] = {}
    for _, status, fp in rows:
        by_point.setdefault(fp, []).append(status)
    finished_once = sum(1 for s in by_point.values() if s.count("FINISHED") == 1)
    from retrievers.cache import Cache

    cache = Cache(work / "cache")
    entries = [p.parent for p in (work / "cache").rglob("manifest.json") if ".quarantine" not in p.parts]
    intact = sum(cache.verify(e.parent.name, e.name) for e in entries)
    temps = list((work / "cache").rglob(".tmp-*"))
    return {"processes": n, "points": len(set(map(tuple, points))), "killed": {str(k): v for k, v in killed.items()},
            "first_exit_codes": {str(k): v for k, v in first_codes.items()},
            "relaunch_exit_codes": {str(k): p.returncode for k, p in relaunched.items()},
            "runs": len(rows), "statuses": {s: sum(st.count(s) for st in by_point.values()) for s in ("FINISHED", "KILLED", "FAILED", "RUNNING")},
            "points_finished_exactly_once": finished_once, "distinct_points_logged": len(by_point),
            "cache_entries": len(entries), "cache_entries_intact": intact, "temp_folders_left": len(temps),
            "wall_s": round(wall, 1), "workdir": str(work)}


def first_runs(n: int, seed: int) -> dict:
    rng = random.Random(seed + 1)
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    trials = []
    for i in range(n):
        work = Path(tempfile.mkdtemp(prefix="rbench-first-"))
        sig, delay = signals[i % 3], rng.uniform(0.5, 5.0)
        proc = launch([], work, 0, 0)
        t0 = time.time()
        while proc.poll() is None and time.time() - t0 < delay:
            time.sleep(0.05)
        store, phase = work / "mlflow.db", "after the run"
        if proc.poll() is None:
            phase = "mid-run" if running_pid(work, proc.pid) else \
                "opening the store" if Path(f"{store}.lock").exists() else "start-up"
            proc.send_signal(sig)
        proc.wait()
        again = launch([], work, 0, 1)
        again.wait()
        db = sqlite3.connect(store)
        finished = db.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0]
        db.close()
        trials.append({"signal": signal.Signals(sig).name, "at_s": round(delay, 2), "phase": phase,
                       "exit": proc.returncode, "relaunch_exit": again.returncode, "finished_runs": finished})
    return {"trials": trials, "relaunches_finished": sum(t["relaunch_exit"] == 0 and t["finished_runs"] >= 1 for t in trials),
            "phases": {ph: sum(t["phase"] == ph for t in trials) for ph in ("start-up", "opening the store", "mid-run", "after the run")}}


def markdown(b: dict, s: dict, machine: str, args: argparse.Namespace, f: dict | None = None) -> str:
    lost = s["points"] - s["points_finished_exactly_once"]
    killed_marked = s["statuses"]["KILLED"]
    lines = [
        "# Reliability: bad input, faults, untrusted artifacts", "",
        f"Command: `python -m benchmarks.scripts.reliability --processes {args.processes} --kill {args.kill} "
        f"--seed {args.seed} --first-runs {args.first_runs}`", "",
        "| figure | value |", "|---|---|",
        f"| cases tried ({', '.join(f'tests/{f} {n}' for f, n in b.get('by_file', {}).items()) or 'tests/test_reliability.py'}) "
        f"| {b['cases']} |",
        f"| of which bad data files through `rbench` (exit 2, file:line named, no traceback) | {b['bad_data']} |",
        f"| of which bad configs through `rbench` (exit 2, key named, < 5 s) | {b['bad_config']} |",
        *(f"| of which hostile input: {g} | {passed} of {n} pass |" for g, (n, passed) in b.get("hostile_groups", {}).items()),
        *([f"| of which a tracking server down or silent (`rbench`, `rbench-report`, `rbench-audit` exit 2 in < 10 s) | "
           f"{b['down_server'][1]} of {b['down_server'][0]} pass |"] if b.get("down_server") else []),
        f"| clear errors / cases passing | {b['passed']} of {b['cases']}"
        f"{' (' + str(b['skipped']) + ' skipped: needs root or a tmpfs)' if b.get('skipped') else ''} |",
        f"| soak: concurrent `rbench` processes on one cache and one SQLite store | {s['processes']} |",
        f"| soak: processes signalled after their run started | {len(s['killed'])} "
        f"({', '.join(f'{v} to #{k}' for k, v in sorted(s['killed'].items()))}); exited by the signal: "
        f"{sum(1 for k in s['killed'] if s['first_exit_codes'][k] != 0)} (the rest had finished their run as it landed) |",
        f"| soak: points FINISHED exactly once (after relaunching the killed ones) | {s['points_finished_exactly_once']} of {s['points']} |",
        f"| soak: runs lost | {lost} |",
        f"| soak: killed runs marked KILLED / left RUNNING | {killed_marked} / {s['statuses']['RUNNING']} |",
        f"| soak: cache entries intact (checksums verified) | {s['cache_entries_intact']} of {s['cache_entries']} |",
        f"| soak: temp folders left in the cache | {s['temp_folders_left']} |",
        *([f"| first runs interrupted at a random moment of their first 5 s (SIGINT, SIGTERM, SIGKILL in turn) | "
           f"{len(f['trials'])} (" + ", ".join(f"{v} in {k}" for k, v in f["phases"].items() if v) + ") |",
           f"| first runs: relaunches that finished their run on the same store | {f['relaunches_finished']} of "
           f"{len(f['trials'])} |"] if f else []),
        "| secrets found in params, tags, artifacts, caches, logs | 0 (asserted by `test_no_secret_in_params_tags_artifacts_caches_or_logs`) |",
        "",
        "Faults survived (each a test in the battery): a third of `embeddings.npy` zeroed (same size) and a "
        "truncated `.npy` (both detected by checksum/size, quarantined, re-encoded, same results); a run entry "
        "overwritten; entries written before checksums existed (checksummed on first read); temp folders of dead "
        "writers and stale locks (removed); SIGTERM and Ctrl-C mid-run (run KILLED, exit 143/130, one line), also "
        "when the signal lands inside a finaliser (re-delivered); a first run interrupted while MLflow migrates "
        "its new store (no store left behind); a store left half-created by an older version (kept aside, made "
        "again; one that holds runs is left alone); a "
        "stored config naming `shutil.copyfile` (refused before instantiation); a 301/302/303 redirect of the LLM "
        "endpoint to another origin (no Authorization header sent there).",
        "",
        "Round 3 (#35) cases beside the battery, each a test through the real entry point: secrets on error paths "
        "(`tests/test_secrets.py`: a password in `dataset.path` given as a URL, in `decomposer.base_url` (the run's "
        "name), `Authorization: Basic`/`Bearer` values in the Hydra folder and in a server's echoed error body, for "
        "`rbench`, `rbench-report` and `rbench-audit`); engines and indexes that cannot start (`tests/test_scale_out.py`: "
        "no SLURM, a Ray address nothing answers on, more IVF lists than passages), a sequence length beyond the model "
        "(`tests/test_splade.py`), `beir_full` with an unknown collection, a folder that is a link loop, or a failed "
        "point's key (`tests/test_beir_full.py`), a FAILED status the store refuses (`tests/test_full_disk.py`), and "
        "trace exports read in part or refused by the wrong limit (`tests/test_trace_fixtures.py`).",
        "", f"Soak detail: {json.dumps({k: s[k] for k in ('killed', 'first_exit_codes', 'relaunch_exit_codes', 'statuses', 'wall_s')})}",
        *(["", f"First runs: {json.dumps(f['trials'])}"] if f else []),
        "", machine, ""]
    if b["failed"]:
        lines.insert(6, f"**Failing cases:** {', '.join(b['failed_names'])}\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/reliability")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--kill", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-runs", type=int, default=12, help="first runs interrupted at random, then relaunched")
    parser.add_argument("--skip-battery", action="store_true", help="soak only; battery figures from the last --out json")
    args = parser.parse_args(argv)
    from benchmarks.scripts.machine import as_markdown, describe

    previous = Path(args.out).with_suffix(".json")
    if args.skip_battery and previous.is_file():  # keep the battery figures of the last full run
        b = json.loads(previous.read_text())["battery"]
    elif args.skip_battery:
        b = {"cases": 0, "passed": 0, "skipped": 0, "failed": 0, "failed_names": [], "bad_data": 0, "bad_config": 0}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            b = battery(Path(tmp) / "junit.xml")
    s = soak(args.processes, args.kill, args.seed)
    f = first_runs(args.first_runs, args.seed) if args.first_runs else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"battery": b, "soak": s, "first_runs": f}, indent=2), encoding="utf-8")
    text = markdown(b, s, as_markdown(describe()), args, f)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    ok = b["failed"] == 0 and s["points_finished_exactly_once"] == s["points"] and s["statuses"]["RUNNING"] == 0 \
        and s["cache_entries_intact"] == s["cache_entries"] and (f is None or f["relaunches_finished"] == len(f["trials"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
