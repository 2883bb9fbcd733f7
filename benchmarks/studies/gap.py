"""``rbench-report gap``: BM25 against the learned first stages (dense, SPLADE) per dataset, with paired tests
(Holm-adjusted), beside the published figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from benchmarks.paths import DATA_DIR
from benchmarks.evaluation.stats import ALPHA, PERMUTATION, fmt, fmt_p, holm, markdown
from benchmarks.tracking.store import ReportError, RunRecord
from benchmarks.studies.registry import StudyContext, StudyResult, register, compare

PUBLISHED = DATA_DIR / "published.json"


def published() -> dict[str, Any]:
    return json.loads(PUBLISHED.read_text(encoding="utf-8"))


#: the first stages the gap table compares with BM25, in column order (a system absent from the runs is left out)
SYSTEMS = ("dense", "splade")
LABELS = {"bm25": "BM25", "dense": "dense", "splade": "SPLADE"}


def gap(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    pub = published()
    by_ds: dict[str, dict[str, RunRecord]] = {}
    for rec in records:
        kind = rec.choice("retriever", "")
        if kind in ("bm25", *SYSTEMS):
            by_ds.setdefault(rec.dataset, {})[kind] = rec  # records are sorted by time: the latest wins
    if not by_ds:
        raise ReportError("no bm25/dense runs found (params 'retriever=bm25' and 'retriever=dense')")
    systems = [s for s in SYSTEMS if any(s in pair for pair in by_ds.values())]
    names = sorted(by_ds)
    table: list[dict[str, Any]] = []
    tests: list[tuple[int, str, str]] = []  # (row, system, metric) of every paired test, for Holm
    pvalues: list[float] = []
    for ds in names:
        pair = by_ds[ds]
        bm = pair.get("bm25")
        entry: dict[str, Any] = {"dataset": ds, "queries": int((bm or next(iter(pair.values()))).metrics.get("queries_scored", 0)),
                                 "bm25_run_id": bm.run_id if bm else ""}
        for system in systems:
            rec = pair.get(system)
            entry[f"{system}_run_id"] = rec.run_id if rec else ""
            # a dense model is its encoder's (retriever.encoder.model); SPLADE's, and a dense run stored before the encoder
            # node, name it retriever.model
            entry[f"{system}_model"] = (rec.setting("retriever.encoder.model", "") or rec.setting("retriever.model", "")) if rec else ""
        for m in ("ndcg_at_10", "recall_at_100"):
            entry[f"bm25_{m}"] = bm.metrics.get(m, float("nan")) if bm else float("nan")
            for system in systems:
                rec = pair.get(system)
                entry[f"{system}_{m}"] = rec.metrics.get(m, float("nan")) if rec else float("nan")
                delta, p = (compare(client, bm, rec, m)[:2]) if bm and rec else (float("nan"), float("nan"))
                entry[f"delta_{system}_{m}" if system != "dense" else f"delta_{m}"] = delta
                entry[f"p_{system}_{m}" if system != "dense" else f"p_{m}"] = p
                tests.append((len(table), system, m))
                pvalues.append(p)
        table.append(entry)
    for (row, system, m), adj in zip(tests, holm(pvalues)):
        table[row][f"p_holm_{system}_{m}"] = adj

    def cells(entry: dict[str, Any], m: str) -> list[str]:
        out = [fmt(entry[f"bm25_{m}"])]
        for system in systems:
            delta = entry[f"delta_{system}_{m}" if system != "dense" else f"delta_{m}"]
            p = entry[f"p_holm_{system}_{m}"]
            star = "*" if p == p and p < ALPHA else ""
            out += [fmt(entry[f"{system}_{m}"]), f"{delta:+.4f}{star}" if delta == delta else "—", fmt_p(p)]
        return out

    text = "## BM25 vs learned retrievers (this reproduction)\n"
    for m, title in (("ndcg_at_10", "nDCG@10"), ("recall_at_100", "R@100")):
        header = ["dataset", "queries", f"BM25 {title}"]
        for system in systems:
            header += [f"{LABELS[system]} {title}", f"Δ {LABELS[system]} − BM25", "p (Holm)"]
        text += f"\n### {title}\n\n" + markdown(header, [[e["dataset"], str(e["queries"]), *cells(e, m)] for e in table]) + "\n"
    models = "; ".join(f"{LABELS[s]}: {', '.join(sorted({e[f'{s}_model'] for e in table if e[f'{s}_model']}))}"
                       for s in systems)
    text += (f"\nΔ is the system minus BM25; p from a {PERMUTATION}, queries paired by id, Holm-adjusted over all "
             f"{len(pvalues)} comparisons of this report; * p < {ALPHA}. Models: {models}.\n")
    pubrows = []
    for entry in table:
        ds = entry["dataset"]
        key = pub["aliases"].get(ds, ds)
        for system, fig in pub["datasets"].get(key, {}).items():
            kind = fig["kind"]
            if kind != "bm25" and kind not in systems:
                continue
            if fig.get("model") and fig["model"] != entry.get(f"{kind}_model"):
                continue
            ours = entry[f"{kind}_ndcg_at_10"]
            comparable = key == ds
            holds = ""
            if comparable and (system == "Pyserini BM25 flat" or fig.get("model")):
                tol = 0.015 if fig.get("model") else 0.01
                holds = "yes" if abs(ours - fig["ndcg_at_10"]) <= tol else "no"
                holds += f" (±{tol})"
            pubrows.append([ds, system, fmt(fig["ndcg_at_10"], 3), fmt(fig.get("recall_at_100", float("nan")), 3),
                            fig["source"], fmt(ours), holds or ("not comparable: different corpus" if not comparable else "—")])
    if pubrows:
        text += "\n## Published figures\n\n" + markdown(
            ["dataset", "system", "nDCG@10", "R@100", "source", "ours (the same kind of system)", "reproduced?"], pubrows)
        text += "\n\nSources: " + "; ".join(f"{k}: {v}" for k, v in pub["_sources"].items()) + ".\n"
        text += f"\n{pub['_about']}\n"
    if out:
        plot_gap(table, pub, out + ".png", systems)
        text += f"\n![BM25 vs learned retrievers]({Path(out).name}.png)\n"
    return text, table


def plot_gap(table: list[dict], pub: dict[str, Any], path: str, systems: Sequence[str] = ("dense",)) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    kinds = ["bm25", *systems]
    colours = {"bm25": "#4C72B0", "dense": "#DD8452", "splade": "#55A868"}
    names = [row["dataset"] for row in table]
    x = np.arange(len(names))
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(max(5, 2.2 * len(names) + 2), 4.2))
    for j, kind in enumerate(kinds):
        xs = x - 0.4 + width * (j + 0.5)
        values = [row[f"{kind}_ndcg_at_10"] for row in table]
        ax.bar(xs, values, width, label=f"{LABELS[kind]} (ours)", color=colours.get(kind, "#8172B3"))
        for xi, v in zip(xs, values):
            if v == v:
                ax.text(xi, v + 0.01, f"{v:.3f}", ha="center", fontsize=7)
    labelled = False
    for i, row in enumerate(table):
        for system, f in pub["datasets"].get(row["dataset"], {}).items():
            if f["kind"] not in kinds:
                continue
            if system == "Pyserini BM25 flat" or (f.get("model") and f["model"] == row.get(f"{f['kind']}_model")):
                left = i - 0.4 + width * kinds.index(f["kind"])
                ax.plot([left, left + width], [f["ndcg_at_10"]] * 2, "k--", lw=1.4,
                        label=None if labelled else "published: Pyserini BM25 flat / MTEB (same model)")
                labelled = True
    ax.set_xticks(x, names)
    ax.set_ylabel("nDCG@10")
    ax.set_ylim(0, 1)
    ax.set_title("BM25 vs dense (MiniLM) vs SPLADE-tiny (MS MARCO only), per dataset" if "splade" in systems
                 else "BM25 vs dense, per dataset (dashed: published figure)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register("gap", "BM25 vs dense and SPLADE per dataset (paired tests, Holm), beside published figures")
def run(ctx: StudyContext) -> StudyResult:
    return StudyResult(*gap(ctx.client, ctx.records, ctx.out))
