"""The retrieval audit: what the retrieval layer returned before a model saw it, and why a query failed.

Every run logs ``audit.jsonl`` (:func:`benchmarks.diagnosis.records.audit_rows`): per query its text, route and sub-queries, the top-k
chunks (document, span, score, rank, gold flag) and whether the gold evidence is in the context at all —
at document level, and at span level where gold spans exist (within ``metrics.budget`` tokens).

``rbench-audit --run-id ID`` (or ``--experiment E [--filter key=value]``) re-reads a run, rebuilds its
dataset and chunks from the logged config, and gives each *failed* query (a gold document missing from
the top k, a gold span missing from the context, or a superseded version ranked above its current one)
one verdict, with the evidence for it, checked in this order:

1. ``stale_version`` — a superseded document (corpus metadata ``superseded_by``) ranks above the current
   version of a gold document, or is in the top k while the current one is not;
2. ``chunk_boundary`` — a gold document is in the top k but a gold span of it is split across chunks
   (no single chunk contains it whole);
3. ``multi_hop`` — some but not all gold documents are in the top k;
4. ``exact_term`` — a BM25 run finds a gold document in the top k that a dense run misses (the companion
   runs are computed with the run's chunker, from the cache where possible);
5. ``routing`` — (router runs) another route ranks this query's gold documents better (nDCG@k);
6. ``other``.

The verdicts never read the dataset's failure-mode labels: the dataset is rebuilt with ``label`` removed
from every query, and labels (from the run's ``per_query.csv``) are only joined afterwards to score the
audit (confusion table, agreement rate).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from benchmarks.diagnosis.companions import companion_runs
from benchmarks.diagnosis.page import html_report, summary_text, write_outputs
from benchmarks.diagnosis.run_audit import run_audit, run_signals, strip_labels
from benchmarks.diagnosis.signals import Corpus, not_computed
from benchmarks.errors import ConfigError, RbenchError
from benchmarks.labels import LABELS
from benchmarks.tracking.groups import GROUPS, describe
from benchmarks.paths import CONF_DIR, location, runnable
from benchmarks.arguments import arg_type, integer, limit, number
from benchmarks.datasets import limits
from retrievers.infrastructure.errors import RetrieverError
from retrievers.dense import regrouped
from benchmarks.tracking.store import download_artifact, resolve_run_id
from benchmarks.datasets.beir import is_beir_folder
from benchmarks.run.retrieval import chunk_dataset
from benchmarks.evaluation.trec import read_run
from benchmarks.diagnosis.matching import RECALL_THRESHOLD
from benchmarks.diagnosis.traces import FAILED_WHAT, audit_traces, mlflow_records, queries_from_audit, traces_of
from retrievers.infrastructure.redact import redact_uri
from retrievers.infrastructure.safe_write import write_text
from benchmarks.tracking.store import ReportError, load_runs, matches, parse_filter
from benchmarks.tracking.tracker import check_reachable, check_store

def _download(client: Any, run_id: str, name: str, folder: str) -> Path | None:
    try:
        return Path(download_artifact(client, run_id, name, folder))
    except Exception:
        return None


def project_targets() -> set[str]:
    """Every ``_target_`` the project's own config groups name (``conf/**/*.yaml``): the classes a run's
    stored config may ask the audit to build."""
    import re

    found: set[str] = set()
    for path in CONF_DIR.rglob("*.yaml"):
        found.update(re.findall(r"^\s*_target_:\s*([\w.]+)\s*(?:#.*)?$", path.read_text(encoding="utf-8"), re.M))
    return found


def foreign_targets(node: Any, allowed: set[str], path: str = "") -> list[str]:
    """``key: target`` for every ``_target_`` in a config tree that is not one of ``allowed`` (and every
    ``_args_``, never read from a stored config)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "_target_" and value is not None and str(value) not in allowed:
                out.append(f"{here}: {value}")
            elif key == "_args_":
                out.append(f"{here}: positional arguments are never read from a stored config")
            else:
                out += foreign_targets(value, allowed, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out += foreign_targets(item, allowed, f"{path}[{i}]")
    return out


def check_stored_config(cfg: Any, run_id: str) -> None:
    """A run's ``config.yaml`` comes from an artifact store others may write to: refuse any ``_target_`` that
    is not one of the project's own classes before anything is instantiated from it."""

    bad = foreign_targets(cfg, project_targets())
    if bad:
        raise ConfigError(f"run {run_id}'s config.yaml names classes that are not the project's own, so it is not "
                          f"rebuilt (an artifact store is not trusted to choose code): {'; '.join(bad[:5])}")


def current_layout(cfg: Any) -> Any:
    """A stored run's config in today's layout: every dense retriever node written before the ``encoder`` and
    ``index`` nodes (flat ``model``, ``index: hnsw``, ...) regrouped (``retrievers.dense.regrouped``)."""
    from omegaconf import OmegaConf

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("_target_") == "retrievers.dense.DenseRetriever":
                node = regrouped(node)
            return {k: walk(v) for k, v in node.items()}
        return [walk(v) for v in node] if isinstance(node, list) else node

    return OmegaConf.create(walk(OmegaConf.to_container(cfg, resolve=False)))


def audit_mlflow_run(client: Any, run_id: str, *, k: int | None = None,
                     dataset_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Re-read one run and audit it: rows, verdicts, labels (joined afterwards), documents."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf


    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = _download(client, run_id, "config.yaml", tmp)
        audit_path = _download(client, run_id, "audit.jsonl", tmp)
        run_path = _download(client, run_id, "run.trec", tmp)
        pq_path = _download(client, run_id, "per_query.csv", tmp)
        if cfg_path is None or audit_path is None or run_path is None:
            raise SystemExit(f"rbench-audit: run {run_id} lacks config.yaml / audit.jsonl / run.trec artifacts "
                             "(runs made before the audit existed cannot be audited; rerun them)")
        cfg = OmegaConf.load(cfg_path)
        check_stored_config(cfg, run_id)
        cfg = current_layout(cfg)
        rows = [json.loads(line) for line in open(audit_path, encoding="utf-8")]
        run = read_run(run_path)
        labels = {}
        if pq_path is not None:
            with open(pq_path, encoding="utf-8") as fh:
                labels = {r["query_id"]: r["label"] for r in csv.DictReader(fh) if r.get("label") in LABELS}
    if k is not None:
        rows = [{**r, "k": k} for r in rows]
    if dataset_overrides:
        cfg = OmegaConf.merge(cfg, {"dataset": dict(dataset_overrides)})
    dataset = strip_labels(instantiate(cfg.dataset).load())
    chunks = chunk_dataset(dataset, instantiate(cfg.chunker))
    companions = companion_runs(cfg, dataset, chunks, int(cfg.top_k))
    meta = {d.id: dict(d.metadata) for d in dataset.corpus}
    verdicts = run_audit(rows, run, meta, companions)

    signals = run_signals(rows, chunks, Corpus.of(dataset.corpus), companions)
    data = client.get_run(run_id).data
    params = data.params
    pipeline = describe({g: str(params[g]) for g in GROUPS if g in params})
    if data.tags.get("routes"):  # a routed run: its routes too
        pipeline += f" (routes: {data.tags['routes']})"
    return {"rows": rows, "verdicts": verdicts, "labels": labels, "docs": {d.id: d for d in dataset.corpus},
            "dataset": dataset.name, "config": cfg, "signals": signals, "pipeline": pipeline}


COMPANION_CHOICES = {"bm25,dense": ("bm25", "dense"), "dense,bm25": ("bm25", "dense"), "bm25": ("bm25",),
                     "dense": ("dense",), "none": ()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rbench-audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--experiment", default=None, help="audit the latest FINISHED run of this experiment matching --filter")
    parser.add_argument("--filter", default=None, help='param filter, e.g. "retriever=dense,chunker=fixed_tokens"; with '
                        "--mlflow-experiment, MLflow's trace filter, e.g. \"tags.env = 'prod'\"")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<$RBENCH_HOME or .>/results/mlflow.db")
    parser.add_argument("--k", type=arg_type(int, integer(1)), default=None, help="top-k for the verdicts (default: the run's, 10)")
    parser.add_argument("--out", default=None, help="write <out>.md, <out>.csv and the self-contained <out>.html")
    parser.add_argument("--examples", type=arg_type(int, integer(0)), default=3, help="worst examples per verdict in the HTML report")
    traces = parser.add_argument_group("production traces (no MLflow run needed)")
    traces.add_argument("--traces", default=None, metavar="FILE",
                        help="audit your own system's logged retrievals: JSON lines of {query, contexts: [{id, text, "
                             "doc_id?, score?, rank?}], reference?, answer?, feedback?}, or OpenInference retriever spans")
    traces.add_argument("--mlflow-experiment", default=None, metavar="NAME",
                        help="audit the traces of this MLflow experiment, read from the tracking server (--tracking-uri) "
                             "a page at a time (--filter: MLflow's trace filter; --max-traces)")
    traces.add_argument("--max-traces", type=arg_type(int, integer(1)), default=10_000,
                        help="with --mlflow-experiment: read at most this many traces (default 10000)")
    traces.add_argument("--corpus", default=None, metavar="DIR",
                        help="with --traces: the documents folder (or BEIR folder) the system retrieves from; locates "
                             "the evidence and reruns BM25, dense and versions=filter over it")
    traces.add_argument("--companions", default="bm25,dense", choices=sorted(COMPANION_CHOICES),
                        help="with --corpus: the companion runs (bm25: BM25 and versions=filter; dense encodes the "
                             "corpus, which can take minutes; the cost is printed first)")
    traces.add_argument("--references", default=None, metavar="FILE",
                        help="with --traces: references to judge the traces by (.jsonl/.json/.csv: reference, and "
                             "span_id, trace_id or query to join on); they replace a trace's own")
    traces.add_argument("--write-queries", default=None, metavar="FILE",
                        help="with --corpus (a documents folder): write the traces that carry a reference as a "
                             "dataset=files queries file (.jsonl: text, relevant documents, evidence), to measure "
                             "fixes on your own production questions with rbench -m dataset=files ...")
    parser.add_argument("--limit", type=limit, action="append", default=[], metavar="NAME=VALUE",
                        help="raise (or lower) a bounded-reading limit, as the config's limits.* (e.g. --limit "
                             "json_file_mb=4096 for a large exported .json); repeatable")
    traces.add_argument("--recall-threshold", type=arg_type(float, number(0, 1, open_lo=True)), default=None,
                        help="with --traces: content-word recall at which a reference counts as reached (default 0.8)")
    return parser


def _read_mlflow(args: argparse.Namespace) -> tuple[Any, str]:
    """(traces and report, a name for them) of ``--mlflow-experiment``, read from the tracking server."""
    uri = args.tracking_uri or location("tracking.uri")
    check_reachable(uri, key="--tracking-uri", hint="--tracking-uri (or MLFLOW_TRACKING_URI)")
    check_store(uri, write=False, key="--tracking-uri")
    label = f"{redact_uri(uri)} experiment {args.mlflow_experiment!r}"
    read = traces_of(mlflow_records(uri, args.mlflow_experiment, filter_string=args.filter, max_traces=args.max_traces),
                     Path(label))
    return read, label


def _attribution_line(counts: Mapping[str, int]) -> str:
    if not counts:
        return ""
    total = sum(counts.values())
    how = ", ".join(f"{counts.get(r, 0)} by {r if r != 'source' else 'recorded source'}" for r in ("id", "source", "text"))
    return (f" Passages attributed to a corpus document: {how} of {total}; {counts.get('ambiguous', 0)} ambiguous "
            f"(text in several documents: no verdict rests on which), {counts.get('unmapped', 0)} unmapped.")


def traces_main(args: argparse.Namespace) -> int:
    threshold = RECALL_THRESHOLD if args.recall_threshold is None else args.recall_threshold
    if not 0 < threshold <= 1:
        print(f"rbench-audit: error: --recall-threshold must be in (0, 1], got {threshold}", file=sys.stderr)
        return 2
    if args.traces and args.mlflow_experiment:
        print("rbench-audit: error: give --traces FILE or --mlflow-experiment NAME, not both", file=sys.stderr)
        return 2
    if args.write_queries and not args.corpus:
        print("rbench-audit: error: --write-queries needs --corpus DIR (the documents the queries' relevant documents "
              "and evidence are found in)", file=sys.stderr)
        return 2
    try:
        if args.write_queries and is_beir_folder(args.corpus):
            raise ConfigError("--write-queries writes a dataset=files queries file: --corpus must be a documents folder, "
                              f"not a BEIR folder ({args.corpus})")
        read, source = _read_mlflow(args) if args.mlflow_experiment else (None, args.traces)
        result = audit_traces(args.traces, corpus_dir=args.corpus, k=args.k or 10, threshold=threshold,
                              references=args.references, companions=COMPANION_CHOICES[args.companions], read=read)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench-audit: error: {err}", file=sys.stderr)
        return 2
    rows = result["rows"]
    shown = source if args.mlflow_experiment else Path(args.traces).name
    name = f"{shown} ({result['n_traces']} traces" + (f", corpus {args.corpus})" if args.corpus else ")")
    how = (f"{FAILED_WHAT}: not contained in one passage, and under {threshold:g} of its content words in the "
           "passages together")
    text = summary_text(name, rows, result["verdicts"], {}, result["signals"], failed_what=how,
                        not_computed=result["not_computed"])
    reached = sum(1 for r in rows if r.get("reached"))
    judged = sum(1 for r in rows if r["judged"])
    joined = result["references"]
    text += (f"\nReference reached the context in {reached} of {judged} traces with a reference. "
             f"Read: {result['read'].line()}."
             + (f" References ({args.references}): {joined['references']} read, {joined['traces_given']} traces given one, "
                f"{joined['unmatched']} matched no trace." if joined else "")
             + _attribution_line(result["attribution"]) + "\n")
    misses = [r for r in rows if "verdict" in r]
    if misses:
        text += "\n| line | trace | verdict | evidence | fix |\n|---|---|---|---|---|\n" + "".join(
            f"| {r['line']} | {r['query_id']} | {r['verdict']} | {r['evidence'].replace('|', '/')} | "
            f"{r['trace']['fix'].replace('|', '/')} |\n" for r in misses)
    print(text)
    if args.write_queries:
        queries, counts = queries_from_audit(rows, result["view"])
        if not queries:
            print(f"rbench-audit: error: --write-queries: no trace carries a reference found in the corpus "
                  f"({', '.join(f'{v} {k}' for k, v in counts.items()) or 'no traces'}); nothing written", file=sys.stderr)
            return 2
        write_text(args.write_queries, "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries),
                   what="the queries")
        left = {k: v for k, v in counts.items() if k != "written" and v}
        print(f"rbench-audit: wrote {len(queries)} queries to {args.write_queries}"
              + (f" ({'; '.join(f'{k}: {v}' for k, v in left.items())})" if left else "")
              + f"; measure fixes on them: {runnable('rbench')} -m dataset=files dataset.path={args.corpus} "
                f"dataset.queries={args.write_queries} retriever=bm25,dense", file=sys.stderr)
    if args.out:
        table = [{"line": r["line"], "query_id": r["query_id"], "reached": r["reached"], "verdict": r.get("verdict", ""),
                  "evidence": r.get("evidence", ""), "where": r.get("trace", {}).get("where", ""),
                  "fix": r.get("trace", {}).get("fix", "")} for r in rows]
        write_outputs(Path(args.out), text, ["line", "query_id", "reached", "verdict", "evidence", "where", "fix"], table,
                      result["signals"],
                      html_report(f"Trace audit — {name}", rows, result["verdicts"], {}, result["docs"], text,
                                  per_verdict=args.examples, signals=result["signals"],
                                  not_computed=result["not_computed"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limits.configure(dict(args.limit) or None)
    if args.traces or args.mlflow_experiment:
        return traces_main(args)
    for flag in ("corpus", "references", "write_queries"):
        if getattr(args, flag):
            print(f"rbench-audit: error: --{flag.replace('_', '-')} goes with --traces or --mlflow-experiment",
                  file=sys.stderr)
            return 2
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.tracking_uri is None:

        args.tracking_uri = location("tracking.uri")
    from mlflow.tracking import MlflowClient


    check_reachable(args.tracking_uri, key="--tracking-uri", hint="--tracking-uri (or MLFLOW_TRACKING_URI)")
    check_store(args.tracking_uri, write=False, key="--tracking-uri")
    client = MlflowClient(tracking_uri=args.tracking_uri)
    run_id = args.run_id
    if run_id is None:
        if not args.experiment:
            print("rbench-audit: error: give --run-id or --experiment", file=sys.stderr)
            return 2
        try:
            _, records = load_runs(args.tracking_uri, args.experiment)
        except ReportError as err:
            print(f"rbench-audit: error: {err}", file=sys.stderr)
            return 2
        chosen = [r for r in records if matches(r, parse_filter(args.filter))]
        if not chosen:
            print(f"rbench-audit: error: no FINISHED run in {args.experiment!r} matches {args.filter!r}", file=sys.stderr)
            return 2
        run_id = chosen[-1].run_id
    try:
        run_id = resolve_run_id(client, run_id)
    except ConfigError as err:
        print(f"rbench-audit: error: {err}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a store that cannot be searched: the lookup below names the store and the id
        pass
    try:
        client.get_run(run_id)
    except Exception as err:
        print(f"rbench-audit: error: no run {run_id} in {args.tracking_uri} ({type(err).__name__})", file=sys.stderr)
        return 2

    try:
        result = audit_mlflow_run(client, run_id, k=args.k)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench-audit: error: {err}", file=sys.stderr)
        return 2
    name = f"{result['dataset']} · {result['pipeline']} (run {run_id[:8]})"
    skipped = not_computed(answers=False)
    text = summary_text(name, result["rows"], result["verdicts"], result["labels"], result["signals"], not_computed=skipped)
    print(text)
    if args.out:
        table = [{"query_id": v["query_id"], "label": result["labels"].get(v["query_id"], ""), "verdict": v["verdict"],
                  "evidence": v["evidence"]} for v in result["verdicts"]]
        write_outputs(Path(args.out), text, ["query_id", "label", "verdict", "evidence"], table, result["signals"],
                      html_report(f"Retrieval audit — {name}", result["rows"], result["verdicts"], result["labels"],
                                  result["docs"], text, per_verdict=args.examples, signals=result["signals"],
                                  not_computed=skipped))
    return 0
