"""Compare the metrics of two MLflow stores run for run (same experiment, same settings): the check that a
refactor left every number where it was.

    python -m benchmarks.scripts.compare_stores --before sqlite:///old.db --after sqlite:///results/mlflow.db \
        --experiments beir_gap,routing --tolerance 1e-4 [--ignore dataset.path] [--out results/regeneration.md]

Runs are paired by their logged settings, less output locations and keys only one side has (a new config
group with its default option); cost metrics (times, cache counters) are not compared. Exits 1 when any
compared metric differs by more than the tolerance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.paths import is_place
from benchmarks.tracking.layout import contract_metrics
from retrievers.dense import INDEXES, regrouped

VOLATILE = ("time_", "queries_per_s", "ms_per_query", "encoded_texts", "index_builds", "cache_", "rerank_",
            "llm_", "dataset_", "train_time")


def current_params(params: dict[str, str]) -> dict[str, str]:
    """Logged params in today's layout: a dense retriever's flat keys of a run stored before the ``encoder`` and
    ``index`` nodes (``retriever.model``, ``retriever.index``) under their nodes (``retriever.encoder.model``,
    ``retriever.index.kind``), wherever the retriever stands (a hybrid's ``retriever.retrievers.dense``)."""
    out = dict(params)
    for key, value in params.items():
        # the params carry no _target_: the flat layout's dense node is the one whose index is a single value
        if key.endswith(".index") and value in INDEXES:
            node = key[: -len(".index")]
            flat = {k[len(node) + 1:]: v for k, v in params.items()
                    if k.startswith(node + ".") and "." not in k[len(node) + 1:]}
            grouped = regrouped(flat)
            if grouped == flat:
                continue
            for k in flat:
                out.pop(f"{node}.{k}", None)
            for k, v in grouped.items():
                if isinstance(v, dict):
                    out.update({f"{node}.{k}.{kk}": str(vv) for kk, vv in v.items()})
                else:
                    out[f"{node}.{k}"] = v
    return out


def runs(uri: str, experiment: str, ignore: tuple[str, ...] = ()) -> dict[frozenset, dict[str, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    out: dict[frozenset, dict[str, float]] = {}
    for r in client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                order_by=["attributes.start_time ASC"], max_results=50000):
        # class paths (_target_) may move in a refactor; the group options and settings identify a point
        params = {k: v for k, v in current_params(dict(r.data.params)).items()
                  if not is_place(k) and not k.startswith(ignore) and not k.endswith("_target_")}
        out[frozenset(params.items())] = contract_metrics(r.data.metrics)  # the latest run of a point wins
    return out


def pair(before: dict, after: dict) -> list[tuple[dict, dict, str]]:
    """Match each before-run to the after-run whose settings contain all of its settings that the after
    side knows (the after side may add keys: new groups at their defaults)."""
    after_keys = {k for key in after for k, _ in key}
    out = []
    for bkey, bm in before.items():
        wanted = {(k, v) for k, v in bkey if k in after_keys}
        hits = [(akey, am) for akey, am in after.items() if wanted <= set(akey)]
        if len(hits) == 1:
            label = " ".join(f"{k}={v}" for k, v in sorted(bkey) if "." not in k)
            out.append((bm, hits[0][1], label))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--experiments", required=True)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--out", default=None)
    parser.add_argument("--ignore", default="", help="more param prefixes to leave out of pairing, comma-separated "
                                                     "(e.g. dataset.path when the two checkouts live in different folders)")
    args = parser.parse_args(argv)
    lines, worst_all, bad = [], 0.0, []
    for exp in args.experiments.split(","):
        ignore = tuple(x for x in args.ignore.split(",") if x)
        before, after = runs(args.before, exp, ignore), runs(args.after, exp, ignore)
        pairs = pair(before, after)
        worst, n_metrics = 0.0, 0
        for bm, am, label in pairs:
            for m, v in bm.items():
                if m.startswith(VOLATILE) or m not in am:
                    continue
                n_metrics += 1
                d = abs(am[m] - v)
                worst = max(worst, d)
                if d > args.tolerance:
                    bad.append(f"{exp}: {label}: {m} {v:.6f} -> {am[m]:.6f} ({am[m] - v:+.6f})")
        worst_all = max(worst_all, worst)
        lines.append(f"| {exp} | {len(before)} | {len(after)} | {len(pairs)} | {n_metrics} | {worst:.2e} |")
    text = ("| experiment | runs before | runs after | paired | metric values compared | largest difference |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    if bad:
        text += f"\nDifferences above {args.tolerance}:\n\n" + "\n".join(f"- {b}" for b in bad) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
