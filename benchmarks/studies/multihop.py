"""``rbench-report multihop``: decomposers vs the single query — full-evidence coverage@k with paired
tests, a per-label breakdown and small-multiple plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from benchmarks.evaluation.stats import MCNEMAR, fmt, fmt_p, markdown, paired_test
from benchmarks.tracking.store import RunRecord, jsonl_artifact, per_query, per_query_rows
from benchmarks.studies.registry import StudyContext, StudyResult, register

KS = (2, 5, 10, 20)
COVERAGE = tuple(f"evidence_coverage_at_{k}" for k in KS)
TABLE_METRICS = (*COVERAGE, "recall_at_10", "ndcg_at_10")
GATED = (*COVERAGE, "recall_at_10", "ndcg_at_10")


def run_key(rec: RunRecord) -> tuple[str, str, str, str]:
    return rec.dataset, rec.choice("chunker", "none"), rec.choice("retriever"), rec.choice("decomposer", "none")


def key_text(key: tuple[str, str, str, str]) -> str:
    return f"dataset={key[0]} chunker={key[1]} retriever={key[2]} decomposer={key[3]}"


def latest_by_key(records: Sequence[RunRecord]) -> dict[tuple[str, str, str, str], RunRecord]:
    out: dict[tuple[str, str, str, str], RunRecord] = {}
    for rec in sorted(records, key=lambda r: r.start_time):
        out[run_key(rec)] = rec
    return out


def decomposed_ids(client: Any, rec: RunRecord) -> set[str] | None:
    """Query ids the run's decomposer actually decomposed (its ``decomposition.jsonl``); None if absent."""
    rows = jsonl_artifact(client, rec, "decomposition.jsonl")
    return None if rows is None else {row["query_id"] for row in rows if row.get("decomposed")}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def multihop(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    """Coverage@k per dataset x retriever x decomposer, with the paired test against ``none`` (same dataset,
    chunker and retriever; ``gold`` paired on the questions it covers), a per-label breakdown and a plot."""
    latest = latest_by_key(records)
    # decomposers in the order the sweep ran them (the experiment's own list)
    order = {d: i for i, d in enumerate(dict.fromkeys(rec.choice("decomposer", "none") for rec in records))}
    keys = sorted(latest, key=lambda k: (k[0], k[1], k[2], order.get(k[3], 99), k[3]))
    header = ["dataset", "retriever", "decomposer", "queries", *(f"cov@{k}" for k in KS), "R@10", "nDCG@10",
              "calls/q", "Δcov@10 vs none", "p"]
    rows, table, labels_rows = [], [], []
    for key in keys:
        rec = latest[key]
        base = latest.get((key[0], key[1], key[2], "none"))
        pq = per_query(client, rec)
        subset = sorted(pq)
        note = ""
        if latest[key].setting("decomposer._target_", "").endswith("GoldDecomposer"):  # an oracle: its covered subset
            covered = decomposed_ids(client, rec)
            subset = sorted(set(pq) & covered) if covered is not None else subset
            note = " (covered subset)"
        if not subset:
            rows.append([key[0], key[2], key[3], "0", *["—"] * (len(header) - 4)])
            table.append({"dataset": key[0], "chunker": key[1], "retriever": key[2], "decomposer": key[3], "queries": 0})
            continue
        means = {m: _mean([pq[q][m] for q in subset]) for m in TABLE_METRICS if m in pq[subset[0]]}
        delta, p, base_means = float("nan"), float("nan"), {}
        if base is not None and base is not rec:
            bq = per_query(client, base)
            paired = [q for q in subset if q in bq]
            m = "evidence_coverage_at_10"
            if paired:
                xs, ys = [pq[q][m] for q in paired], [bq[q][m] for q in paired]
                delta, p = _mean(xs) - _mean(ys), paired_test(m, ys, xs)
                base_means = {mm: _mean([bq[q][mm] for q in paired]) for mm in COVERAGE}
        calls = rec.metrics.get("retrieval_calls_mean", 1.0)
        rows.append([key[0], key[2], key[3] + note, str(len(subset)), *(fmt(means.get(m, float("nan"))) for m in TABLE_METRICS),
                     f"{calls:.2f}", fmt(delta) if delta == delta else "", fmt_p(p) if p == p else ""])
        table.append({"dataset": key[0], "chunker": key[1], "retriever": key[2], "decomposer": key[3],
                      "queries": len(subset), "subset": "covered" if note else "all", **means,
                      "retrieval_calls_mean": calls, "time_search_s": rec.metrics.get("time_search_s"),
                      "delta_cov10_vs_none": delta, "p_cov10_vs_none": p,
                      **{f"none_{m}": v for m, v in base_means.items()}, "run_id": rec.run_id})
        # per-label breakdown (HotpotQA type, MuSiQue hop count) where the data has more than one label
        by_label: dict[str, list[float]] = {}
        for row in per_query_rows(client, rec):
            if row["query_id"] in subset and row.get("label"):
                by_label.setdefault(row["label"], []).append(float(row["evidence_coverage_at_10"]))
        if len(by_label) > 1:
            for label, vals in sorted(by_label.items()):
                labels_rows.append((key[0], key[2], label, key[3], len(vals), _mean(vals)))
    text = (f"## Query decomposition: full-evidence coverage@k\n\ncov@k: share of questions with every gold "
            f"document in the top k. calls/q: retrieval calls per question. Δ and p: against decomposer=none "
            f"with the same dataset and retriever, paired by question ({MCNEMAR}); `gold` is an oracle and is "
            f"compared on the questions it has a decomposition for.\n\n" + markdown(header, rows) + "\n")
    if labels_rows:
        decs = list(dict.fromkeys(r[3] for r in labels_rows))
        groups: dict[tuple[str, str, str], dict[str, tuple[int, float]]] = {}
        for ds, retr, label, dec, n, v in labels_rows:
            groups.setdefault((ds, retr, label), {})[dec] = (n, v)
        lrows = [[ds, retr, label, str(next(iter(g.values()))[0]), *(fmt(g[d][1]) if d in g else "" for d in decs)]
                 for (ds, retr, label), g in groups.items()]
        text += ("\n### cov@10 by question type (HotpotQA `type`, MuSiQue hop count)\n\n"
                 + markdown(["dataset", "retriever", "label", "queries", *decs], lrows) + "\n")
    if out and table:
        plot_coverage(table, out + ".png")
        text += f"\n![coverage@k per decomposer]({Path(out).name}.png)\n"
    return text, table


def plot_coverage(table: list[dict], path: str) -> None:
    """Small multiples: one panel per (retriever, dataset), one line per decomposer, one shared legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    retrievers = list(dict.fromkeys(r["retriever"] for r in table))
    decomposers = list(dict.fromkeys(r["decomposer"] for r in table))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(len(retrievers), len(datasets), figsize=(3.4 * len(datasets), 2.7 * len(retrievers) + 0.8),
                             squeeze=False, sharex=True, sharey=True)
    handles = {}
    for row, retr in enumerate(retrievers):
        for col, ds in enumerate(datasets):
            ax = axes[row][col]
            for r in table:
                if r["dataset"] != ds or r["retriever"] != retr or not r.get("queries") or r.get("subset") == "covered":
                    continue
                (line,) = ax.plot(KS, [r.get(f"evidence_coverage_at_{k}") for k in KS], marker="o", markersize=3,
                                  color=colors[decomposers.index(r["decomposer"]) % len(colors)],
                                  lw=2.2 if r["decomposer"] == "none" else 1.4)
                handles.setdefault(r["decomposer"], line)
            ax.set_xscale("log")
            ax.set_xticks(KS, [str(k) for k in KS])
            ax.minorticks_off()
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(ds, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{retr}\ncoverage@k")
            if row == len(retrievers) - 1:
                ax.set_xlabel("k")
    fig.legend([handles[d] for d in decomposers if d in handles], [d for d in decomposers if d in handles],
               title="decomposer", loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("Full-evidence coverage@k (every gold document in the top k) by retriever and dataset", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register("multihop", "coverage@k per decomposer with paired tests against decomposer=none")
def run(ctx: StudyContext) -> StudyResult:
    return StudyResult(*multihop(ctx.client, ctx.records, ctx.out))
