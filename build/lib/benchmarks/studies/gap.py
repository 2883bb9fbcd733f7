"""``rbench-report gap``: the dense-vs-BM25 gap per dataset beside the published figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.paths import DATA_DIR
from benchmarks.stats import ALPHA, PERMUTATION, compare, fmt, fmt_p, markdown
from benchmarks.store import ReportError, RunRecord
from benchmarks.study import StudyContext, StudyResult, register

PUBLISHED = DATA_DIR / "published.json"


def published() -> dict[str, Any]:
    return json.loads(PUBLISHED.read_text(encoding="utf-8"))


def gap(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    pub = published()
    by_ds: dict[str, dict[str, RunRecord]] = {}
    for rec in records:
        kind = rec.choice("retriever", "")
        if kind in ("bm25", "dense"):
            by_ds.setdefault(rec.dataset, {})[kind] = rec  # records are sorted by time: the latest wins
    if not by_ds:
        raise ReportError("no bm25/dense runs found (params 'retriever=bm25' and 'retriever=dense')")
    header = ["dataset", "queries", "BM25 nDCG@10", "dense nDCG@10", "Δ nDCG@10 (dense − BM25)", "p",
              "BM25 R@100", "dense R@100", "Δ R@100", "p "]
    rows, table, pubrows = [], [], []
    for ds in sorted(by_ds):
        pair = by_ds[ds]
        bm, de = pair.get("bm25"), pair.get("dense")
        entry: dict[str, Any] = {"dataset": ds, "bm25_run_id": bm.run_id if bm else "", "dense_run_id": de.run_id if de else "",
                                 "dense_model": de.setting("retriever.model", "") if de else ""}
        cells = [ds, str(int((bm or de).metrics.get("queries_scored", 0)))]
        for m in ("ndcg_at_10", "recall_at_100"):
            b = bm.metrics.get(m, float("nan")) if bm else float("nan")
            d = de.metrics.get(m, float("nan")) if de else float("nan")
            delta, p = (compare(client, bm, de, m)[:2]) if bm and de else (float("nan"), float("nan"))
            entry.update({f"bm25_{m}": b, f"dense_{m}": d, f"delta_{m}": delta, f"p_{m}": p})
            star = "*" if p == p and p < ALPHA else ""
            cells += [fmt(b), fmt(d), (f"{delta:+.4f}{star}" if delta == delta else "—"), fmt_p(p)]
        rows.append(cells)
        table.append(entry)
        key = pub["aliases"].get(ds, ds)
        model = de.setting("retriever.model", "") if de else ""
        for system, fig in pub["datasets"].get(key, {}).items():
            if fig.get("model") and fig["model"] != model:
                continue
            ours = entry[f"{fig['kind']}_ndcg_at_10"]
            comparable = key == ds
            holds = ""
            if comparable and (system == "Pyserini BM25 flat" or fig.get("model")):
                tol = 0.015 if fig.get("model") else 0.01
                holds = "yes" if abs(ours - fig["ndcg_at_10"]) <= tol else "no"
                holds += f" (±{tol})"
            pubrows.append([ds, system, fmt(fig["ndcg_at_10"], 3), fmt(fig.get("recall_at_100", float("nan")), 3),
                            fig["source"], fmt(ours), holds or ("not comparable: different corpus" if not comparable else "—")])
    text = "## Dense vs BM25 (this reproduction)\n\n" + markdown(header, rows)
    text += (f"\n\nΔ is dense minus BM25; p from a {PERMUTATION}, queries paired by id; * p < {ALPHA}.\n")
    if pubrows:
        text += "\n## Published figures\n\n" + markdown(
            ["dataset", "system", "nDCG@10", "R@100", "source", "ours (BM25 or dense, as the system)", "reproduced?"], pubrows)
        text += "\n\nSources: " + "; ".join(f"{k}: {v}" for k, v in pub["_sources"].items()) + ".\n"
        text += f"\n{pub['_about']}\n"
    if out:
        plot_gap(table, pub, out + ".png")
        text += f"\n![BM25 vs dense]({Path(out).name}.png)\n"
    return text, table


def plot_gap(table: list[dict], pub: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [row["dataset"] for row in table]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(names) + 2), 4))
    ax.bar(x - 0.2, [row["bm25_ndcg_at_10"] for row in table], 0.4, label="BM25 (ours)", color="#4C72B0")
    ax.bar(x + 0.2, [row["dense_ndcg_at_10"] for row in table], 0.4, label="dense (ours)", color="#DD8452")
    labelled = False
    for i, row in enumerate(table):
        figs = pub["datasets"].get(row["dataset"], {})
        for system, f in figs.items():
            if system == "Pyserini BM25 flat" or (f.get("model") and f["model"] == row.get("dense_model")):
                left = i - 0.4 if f["kind"] == "bm25" else i
                ax.plot([left, left + 0.4], [f["ndcg_at_10"]] * 2, "k--", lw=1.4,
                        label=None if labelled else "published: Pyserini BM25 flat / MTEB (same model)")
                labelled = True
        for dx, key in ((-0.2, "bm25_ndcg_at_10"), (0.2, "dense_ndcg_at_10")):
            if row[key] == row[key]:
                ax.text(i + dx, row[key] + 0.01, f"{row[key]:.3f}", ha="center", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylabel("nDCG@10")
    ax.set_ylim(0, 1)
    ax.set_title("BM25 vs dense, per dataset (dashed: published figure)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



@register("gap", "the dense-vs-BM25 gap table and plot, beside published figures")
def run(ctx: StudyContext) -> StudyResult:
    return StudyResult(*gap(ctx.client, ctx.records, ctx.out))
