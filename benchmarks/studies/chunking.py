"""``rbench-report chunking``: split rate and span recall at the context budget per chunker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.evaluation.stats import PERMUTATION, fmt, fmt_p, markdown
from benchmarks.tracking.store import ReportError, RunRecord
from benchmarks.studies.registry import StudyContext, StudyResult, register, compare


CHUNK_METRICS = ("evidence_split_rate", "span_recall_at_budget", "span_recall_at_10", "ndcg_at_10", "recall_at_100",
                 "chunk_count", "chunk_tokens_mean")


def chunking(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    """Per chunker x retriever: evidence split rate, span recall at the context budget, doc-level metrics,
    chunk statistics; with significance of doc-level nDCG@10 against ``chunker=none`` (same retriever)."""
    latest: dict[tuple[str, str], RunRecord] = {}
    for rec in records:
        latest[(rec.choice("chunker"), rec.choice("retriever"))] = rec
    if not latest:
        raise ReportError("no runs")
    datasets = {rec.dataset for rec in latest.values()}
    if len(datasets) > 1:
        raise ReportError(f"the experiment mixes datasets {sorted(datasets)}; use one experiment per dataset")
    # chunkers in the order the sweep ran them (the experiment's own list), retrievers grouped
    order = list(dict.fromkeys(rec.choice("chunker") for rec in records))
    keys = sorted(latest, key=lambda k: (k[1], order.index(k[0]), k[0]))
    metrics = [m for m in CHUNK_METRICS if any(m in r.metrics for r in latest.values())]
    header = ["retriever", "chunker", *metrics, "p nDCG@10 vs none"]
    rows, table = [], []
    for chunker_name, retr in keys:
        rec = latest[(chunker_name, retr)]
        base = latest.get(("none", retr))
        p = compare(client, base, rec, "ndcg_at_10")[1] if base is not None and base is not rec else float("nan")
        cells = [retr, chunker_name] + [fmt(rec.metrics.get(m, float("nan")), 1 if m.startswith("chunk_") else 4)
                                        for m in metrics] + [fmt_p(p)]
        rows.append(cells)
        table.append({"retriever": retr, "chunker": chunker_name, "chunker_target": rec.setting("chunker._target_"),
                      "run_id": rec.run_id, "p_ndcg_at_10_vs_none": p,
                      **{m: rec.metrics.get(m) for m in metrics}})
    budget = next(iter(latest.values())).setting("metrics.budget", 512)
    text = (f"## Chunkers on {next(iter(datasets))}\n\nevidence_split_rate: share of gold spans no single chunk "
            f"contains whole (lower is better). span_recall_at_budget: share of queries whose top chunks within a "
            f"{budget}-token context contain every gold span whole. p: {PERMUTATION}, doc-level nDCG@10 against "
            "chunker=none with the same retriever.\n\n" + markdown(header, rows) + "\n")
    text += chunking_criteria(table)
    if out and "evidence_split_rate" in metrics:
        plot_chunking(table, out + ".png")
        text += f"\n![split rate and span recall at budget]({Path(out).name}.png)\n"
    return text, table


#: chunker families by implementation (module of the chunker's ``_target_``), not by option name
FIXED_WINDOWS = "chunkers.windows.FixedTokenChunker"
STRUCTURE_MODULE = "chunkers.structure."


def chunking_criteria(table: list[dict]) -> str:
    """Does every structure-aware chunker split fewer gold spans than every fixed-size window, and recall
    more spans within the budget than the best fixed-size window? Per retriever; empty when not measurable."""
    lines = []
    for retr in dict.fromkeys(r["retriever"] for r in table):
        rows = {r["chunker"]: r for r in table if r["retriever"] == retr and r.get("evidence_split_rate") is not None}
        fixed = [r for r in rows.values() if r["chunker_target"] == FIXED_WINDOWS]
        structured = [r for r in rows.values() if str(r["chunker_target"]).startswith(STRUCTURE_MODULE)]
        if not fixed or not structured or any(r.get("span_recall_at_budget") is None for r in fixed + structured):
            continue
        min_split = min(r["evidence_split_rate"] for r in fixed)
        best_fixed = max(r["span_recall_at_budget"] for r in fixed)
        for r in structured:
            ok_split = r["evidence_split_rate"] < min_split
            ok_budget = r["span_recall_at_budget"] > best_fixed
            lines.append(f"- {'PASS' if ok_split and ok_budget else 'FAIL'} ({retr}, {r['chunker']}): split rate "
                         f"{r['evidence_split_rate']:.4f} vs lowest fixed {min_split:.4f}; span recall at budget "
                         f"{r['span_recall_at_budget']:.4f} vs best fixed {best_fixed:.4f}")
    return ("\n### Structure-aware vs fixed-size chunkers\n\n" + "\n".join(lines) + "\n") if lines else ""


def plot_chunking(table: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    chunkers = list(dict.fromkeys(r["chunker"] for r in table))
    retrievers = list(dict.fromkeys(r["retriever"] for r in table))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(chunkers))
    width = 0.8 / max(1, len(retrievers))
    for ax, metric, title in ((axes[0], "evidence_split_rate", "evidence split rate (lower is better)"),
                              (axes[1], "span_recall_at_budget", "span recall at budget (higher is better)")):
        for i, retr in enumerate(retrievers):
            vals = [next((r.get(metric) for r in table if r["chunker"] == c and r["retriever"] == retr), None)
                    for c in chunkers]
            ax.bar(x + (i - (len(retrievers) - 1) / 2) * width, [v if v is not None else 0 for v in vals], width,
                   label=retr)
        ax.set_xticks(x, chunkers, rotation=30, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_xlabel("chunker")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



@register("chunking", "split rate and span recall at budget per chunker, structure-aware vs fixed-size criteria")
def run(ctx: StudyContext) -> StudyResult:
    return StudyResult(*chunking(ctx.client, ctx.records, ctx.out))
