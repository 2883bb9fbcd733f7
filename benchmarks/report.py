"""``rbench-report``: read runs back from MLflow and run one study on them.

    rbench-report --experiment E [--baseline "retriever=bm25"] [--metrics ndcg_at_10,recall_at_100] [--out P]
    rbench-report gap --experiment beir_gap [--out results/beir_gap]
    rbench-report fusion --experiment fusion_sweep [--out results/fusion_scifact]
    rbench-report chunking --experiment chunking_enterprise [--out results/chunking_enterprise]
    rbench-report multihop --experiment multihop [--out results/multihop]
    rbench-report routing --experiment routing [--out results/routing]
    rbench-report gate --experiment multihop_ci --baseline-file results/baselines/multihop_ci.json [--margin 0.01] [--update]
    rbench-report gate --experiment my_rag --baseline-run 5c655744 [--run 9e1f0a27] [--margin 0.02] [--alpha 0.05] [--summary gate.md]

Studies live one per module in ``benchmarks/studies/`` and are selected by name (``benchmarks.studies.registry``).
Significance is computed from the per-query metrics table every run logs (``per_query.csv``), pairing
queries by id with the baseline run of the same dataset: a two-sided paired permutation test (sign flips
of the per-query differences, 10,000 resamples, fixed seed) for graded metrics, and an exact McNemar test
for binary ones (``evidence_coverage_at_k``).
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.evaluation.stats import paired_test, write_outputs
from benchmarks.tracking.store import ReportError, load_runs
from benchmarks.studies.registry import StudyContext, get, studies
from benchmarks.arguments import arg_type, limit, number
from benchmarks.datasets import limits
from benchmarks.paths import location

__all__ = ["main", "paired_test"]


def build_parser() -> argparse.ArgumentParser:
    known = studies()
    parser = argparse.ArgumentParser(prog="rbench-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="table", choices=list(known),
                        help="; ".join(f"{s.name}: {s.help}" for s in known.values()))
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<$RBENCH_HOME or .>/results/mlflow.db")
    parser.add_argument("--baseline", default=None, help='param filter for the baseline runs, e.g. "retriever=bm25"')
    parser.add_argument("--metrics", default=None, help="comma-separated metric names (table)")
    parser.add_argument("--out", default=None, help="write <out>.md and <out>.csv (and <out>.png where the study plots)")
    parser.add_argument("--format", default="md,csv",
                        help="comma-separated output formats for --out: md, csv, latex (a .tex with booktabs tables)")
    parser.add_argument("--include-unfinished", action="store_true",
                        help="also FAILED, KILLED and RUNNING runs (by default reports read FINISHED runs only)")
    parser.add_argument("--baseline-file", default=None, help="gate: the committed baseline (JSON, per-query values)")
    parser.add_argument("--baseline-run", default=None, help="gate: a run in the store as the baseline (id or unique prefix)")
    parser.add_argument("--run", default=None, help="gate: the run tested against --baseline-run (default: the "
                        "experiment's latest other FINISHED run on the baseline's dataset)")
    parser.add_argument("--margin", "--tolerance", dest="tolerance", type=arg_type(float, number(0)), default=0.01,
                        help="gate: a metric fails only when it falls by more than this and significantly")
    parser.add_argument("--alpha", type=arg_type(float, number(0, 1)), default=0.05,
                        help="gate: the significance level of the paired test (default 0.05)")
    parser.add_argument("--summary", default=None,
                        help="gate: append the Markdown summary to this file (default: $GITHUB_STEP_SUMMARY when set)")
    parser.add_argument("--update", action="store_true", help="gate: rewrite the baseline file from the current runs")
    parser.add_argument("--limit", type=limit, action="append", default=[], metavar="NAME=VALUE",
                        help="a bounded-reading limit, as the config's limits.* (e.g. --limit json_file_mb=512 for a "
                             "large --baseline-file); repeatable")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limits.configure(dict(args.limit) or None)
    if args.tracking_uri is None:

        args.tracking_uri = location("tracking.uri")
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"md", "csv", "latex"})
    if unknown:
        print(f"rbench-report: error: --format: unknown {', '.join(unknown)}; choose from md, csv, latex", file=sys.stderr)
        return 2
    try:
        study = get(args.command)
        client, records = load_runs(args.tracking_uri, args.experiment, unfinished=args.include_unfinished)
        result = study.run(StudyContext(client, records, args.experiment, out=args.out, baseline=args.baseline,
                                        metrics=args.metrics, baseline_file=args.baseline_file,
                                        tolerance=args.tolerance, update=args.update, baseline_run=args.baseline_run,
                                        run=args.run, alpha=args.alpha, summary=args.summary))
    except ReportError as err:
        print(f"rbench-report: error: {err}", file=sys.stderr)
        return 2
    if study.prints_only:
        print(result.text)
    else:
        write_outputs(args.out, result.text, result.table, formats=formats)
    return result.exit_code
