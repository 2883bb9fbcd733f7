"""``rbench-report fusion``: the fusion-weight sweep (weight chosen on train, reported on test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from benchmarks.evaluation.stats import MCNEMAR, PERMUTATION, fmt, fmt_p, markdown
from benchmarks.tracking.store import ReportError, RunRecord, per_query_rows
from benchmarks.studies.registry import StudyContext, StudyResult, register, compare


def fusion_points(records: list[RunRecord]) -> tuple[list[tuple[float, RunRecord]], list[tuple[int, RunRecord]]]:
    """(BM25 weight, run) for wsum points, sorted by weight; (k, run) for RRF points."""
    wsum, rrf = {}, {}
    for rec in records:  # sorted by start time: the latest run of a point wins
        method = rec.setting("retriever.fusion")
        if method == "wsum":
            weights = rec.setting("retriever.weights")
            if weights:
                wsum[round(float(weights[0]), 6)] = rec
        elif method == "rrf":
            rrf[int(rec.setting("retriever.rrf_k", 60))] = rec
    return sorted(wsum.items()), sorted(rrf.items())


def select_best(points: Sequence[tuple[float, RunRecord]], metric: str) -> tuple[float, RunRecord]:
    """The point with the highest *train* value of ``metric`` (ties: the first in order). Test metrics are
    never read here, so the choice cannot leak test judgments."""
    scored = [(p, rec) for p, rec in points if f"train_{metric}" in rec.metrics]
    if not scored:
        raise ReportError(f"no run logged train_{metric}: run the sweep with dataset.tune_split=train")
    return max(scored, key=lambda pr: pr[1].metrics[f"train_{metric}"])


def class_breakdown(client: Any, rec: RunRecord, metric: str) -> dict[str, tuple[float, int]]:
    """Mean ``metric`` per exact-term class on the evaluated split."""
    out: dict[str, list[float]] = {}
    for r in per_query_rows(client, rec):
        out.setdefault(r.get("query_class") or "all", []).append(float(r[metric]))
    return {k: (sum(v) / len(v), len(v)) for k, v in out.items()}


def rule_quality(client: Any, rec: RunRecord) -> tuple[float, float, int] | None:
    """Precision and recall of the exact-term rule against an ``exact_term`` label, where labels exist."""
    rows = per_query_rows(client, rec)
    if not any(r.get("label") == "exact_term" for r in rows):
        return None
    tp = sum(1 for r in rows if r["query_class"] == "exact_term" and r["label"] == "exact_term")
    fp = sum(1 for r in rows if r["query_class"] == "exact_term" and r["label"] != "exact_term")
    fn = sum(1 for r in rows if r["query_class"] != "exact_term" and r["label"] == "exact_term")
    return (tp / (tp + fp) if tp + fp else float("nan"), tp / (tp + fn) if tp + fn else float("nan"), len(rows))


def fusion(client: Any, records: list[RunRecord], out: str | None, metric: str = "ndcg_at_10") -> tuple[str, list[dict]]:
    wsum, rrf = fusion_points(records)
    if not wsum:
        raise ReportError("no wsum fusion runs (param retriever.fusion=wsum) in this experiment")
    datasets = {rec.dataset for _, rec in wsum}
    if len(datasets) > 1:
        raise ReportError(f"the experiment mixes datasets {sorted(datasets)}; use one experiment per dataset")
    best_w, best = select_best(wsum, metric)
    by_w = dict(wsum)
    contenders = [(f"hybrid wsum, BM25 weight {best_w:g} (best on train)", best)]
    if 1.0 in by_w:
        contenders.append(("BM25 alone (weight 1)", by_w[1.0]))
    if 0.0 in by_w:
        contenders.append(("dense alone (weight 0)", by_w[0.0]))
    if rrf:
        best_k, best_rrf = select_best(rrf, metric)
        contenders.append((f"RRF k={best_k} (best on train)", best_rrf))
    metrics = [m for m in (metric, "recall_at_100", "evidence_coverage_at_10") if m in best.metrics]
    header = ["system", *[f"train {metric}"], *metrics, *[f"p vs best ({m})" for m in metrics]]
    rows, table = [], []
    for name, rec in contenders:
        cells = [name, fmt(rec.metrics.get(f"train_{metric}", float("nan")))] + [fmt(rec.metrics.get(m, float("nan"))) for m in metrics]
        entry = {"system": name, "run_id": rec.run_id, f"train_{metric}": rec.metrics.get(f"train_{metric}")}
        for m in metrics:
            entry[m] = rec.metrics.get(m)
            if rec is best:
                cells.append("—")
            else:
                _, p, _ = compare(client, rec, best, m)
                entry[f"p_{m}"] = p
                cells.append(fmt_p(p))
        rows.append(cells)
        table.append(entry)
    text = f"## Fusion sweep on {next(iter(datasets))}\n\n"
    text += (f"The weight is chosen by train_{metric} only (argmax over {len(wsum)} wsum points); the table reports "
             f"the test split. p: {PERMUTATION} (graded), {MCNEMAR} (coverage), best hybrid vs each row.\n\n")
    text += markdown(header, rows) + "\n"
    # per-class breakdown
    classes = {name: class_breakdown(client, rec, metric) for name, rec in contenders}
    names = sorted({c for v in classes.values() for c in v})
    text += f"\n### {metric} by query class (exact-term rule)\n\n"
    text += markdown(["system", *[f"{c} (n={next(iter(classes.values())).get(c, (0, 0))[1]})" for c in names]],
                     [[name, *[fmt(classes[name].get(c, (float('nan'), 0))[0]) for c in names]] for name, _ in contenders])
    text += "\n"
    quality = rule_quality(client, best)
    if quality:
        text += (f"\nExact-term rule vs the dataset's `exact_term` label ({quality[2]} {best.split} queries): precision "
                 f"{fmt(quality[0], 3)}, recall {fmt(quality[1], 3)}.\n")
    points = [{"fusion": "wsum", "bm25_weight": w, f"train_{metric}": r.metrics.get(f"train_{metric}"),
               metric: r.metrics.get(metric), "run_id": r.run_id} for w, r in wsum]
    points += [{"fusion": "rrf", "rrf_k": k, f"train_{metric}": r.metrics.get(f"train_{metric}"),
                metric: r.metrics.get(metric), "run_id": r.run_id} for k, r in rrf]
    text += "\n### All points\n\n" + markdown(
        ["point", f"train {metric}", f"test {metric}"],
        [[f"wsum w={p['bm25_weight']:g}" if p["fusion"] == "wsum" else f"rrf k={p['rrf_k']}",
          fmt(p[f"train_{metric}"] if p[f"train_{metric}"] is not None else float("nan")), fmt(p[metric])] for p in points])
    text += "\n"
    if out:
        plot_fusion(wsum, rrf, metric, best_w, out + ".png", dataset=next(iter(datasets)))
        text += f"\n![{metric} vs BM25 weight]({Path(out).name}.png)\n"
    return text, table + points


def plot_fusion(wsum, rrf, metric: str, best_w: float, path: str, dataset: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ws = [w for w, _ in wsum]
    ax.plot(ws, [r.metrics.get(f"train_{metric}", float("nan")) for _, r in wsum], "o-", label="wsum, train")
    ax.plot(ws, [r.metrics.get(metric, float("nan")) for _, r in wsum], "s-", label="wsum, test")
    colors = ["#8172B3", "#937860", "#DA8BC3"]
    for (k, r), color in zip(rrf, colors):
        ax.axhline(r.metrics.get(metric, float("nan")), ls="--", color=color, lw=1, label=f"RRF k={k}, test")
    ax.axvline(best_w, color="grey", ls=":", lw=1, label=f"chosen on train: w={best_w:g}")
    ax.set_xlabel("BM25 weight w (dense weight 1 - w), wsum + min-max")
    ax.set_ylabel(metric)
    ax.set_title(f"Hybrid fusion on {dataset}: {metric} vs BM25 weight" if dataset else f"Hybrid fusion: {metric} vs weight")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



@register("fusion", "the fusion-weight sweep: weight chosen on train, reported on test, with per-class breakdown")
def run(ctx: StudyContext) -> StudyResult:
    return StudyResult(*fusion(ctx.client, ctx.records, ctx.out))
