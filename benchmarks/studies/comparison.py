"""``rbench-report [table]``: every run of an experiment against a baseline, with paired tests."""

from __future__ import annotations

from typing import Any, Sequence

from benchmarks.evaluation.stats import ALPHA, MCNEMAR, PERMUTATION, fmt, fmt_p, holm, markdown
from benchmarks.tracking.store import ReportError, RunRecord, matches, parse_filter, varying_params
from benchmarks.studies.registry import StudyContext, StudyResult, register, compare

DEFAULT_METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10", "evidence_coverage_at_10")


def comparison(client: Any, records: list[RunRecord], baseline: dict[str, str], metrics: Sequence[str]) -> tuple[str, list[dict]]:
    metrics = [m for m in metrics if any(m in r.metrics for r in records)]
    if not metrics:
        raise ReportError("none of the requested metrics were logged by these runs")
    varying = varying_params(records)
    # the baseline of a run is the most similar baseline run: same settings and same group options
    similar = varying + [g for g in ("chunker", "retriever", "decomposer", "router", "versions", "reranker")
                         if len({r.choice(g) for r in records}) > 1]
    shown_groups = [g for g in ("chunker", "decomposer", "router", "versions", "reranker")
                    if len({r.choice(g) for r in records}) > 1]  # options that vary, beside the retriever
    bases = [r for r in records if matches(r, baseline)] if baseline else []
    if baseline and not bases:
        raise ReportError(f"no run matches --baseline {baseline}")
    header = ["dataset", "retriever", "params", "queries", *metrics]
    rows, table, tested = [], [], []
    for rec in sorted(records, key=lambda r: (r.dataset, r.choice("retriever", ""), r.start_time)):
        same = [b for b in bases if b.dataset == rec.dataset and b.split == rec.split]
        base = max(same, key=lambda b: sum(b.value(k) == rec.value(k) for k in similar), default=None)
        params = "; ".join([f"{g}={rec.choice(g)}" for g in shown_groups]
                           + [f"{k}={rec.value(k)}" for k in varying if rec.value(k) is not None])
        routed = rec.choice("router", "none") != "none"  # a router replaces the retriever: name it
        entry = {"run_id": rec.run_id, "dataset": rec.dataset,
                 "retriever": (f"router={rec.choice('router')}" + (f" ({rec.tags['routes']})" if rec.tags.get("routes") else ""))
                 if routed else rec.choice("retriever", ""),
                 "params": params, "queries": int(rec.metrics.get("queries_scored", 0)),
                 "baseline_run_id": base.run_id if base is not None else ""}
        if rec.status != "FINISHED":  # listed with --include-unfinished
            entry["retriever"] += f" [{rec.status}]"
        entry["status"] = rec.status
        cells = [rec.dataset, entry["retriever"], params or "—", str(entry["queries"])]
        for m in metrics:
            value = rec.metrics.get(m, float("nan"))
            entry[m] = value
            if base is None or base.run_id == rec.run_id:
                cells.append(fmt(value) + (" (baseline)" if base is not None else ""))
                entry[f"{m}_delta"] = entry[f"{m}_p"] = entry[f"{m}_p_holm"] = float("nan")
                continue
            delta, p, _ = compare(client, base, rec, m)
            if delta != delta and m in base.metrics:  # not a per-query metric: the difference, untested
                delta = value - base.metrics[m]
            entry[f"{m}_delta"], entry[f"{m}_p"] = delta, p
            cells.append(None)  # filled once every p-value of this metric is known (Holm)
            tested.append((len(rows), len(cells) - 1, entry, m))
        rows.append(cells)
        table.append(entry)
    # Holm over the comparisons of each metric in this report (a family per metric)
    corrected = False
    for m in metrics:
        family = [(r, c, e) for r, c, e, mm in tested if mm == m]
        adjusted = holm([e[f"{m}_p"] for _, _, e in family])
        corrected |= sum(1 for _, _, e in family if e[f"{m}_p"] == e[f"{m}_p"]) > 1
        for (r, c, e), p_holm in zip(family, adjusted):
            e[f"{m}_p_holm"] = p_holm
            p, delta = e[f"{m}_p"], e[f"{m}_delta"]
            star = "*" if p_holm == p_holm and p_holm < ALPHA else ""
            p_text = "p" + (fmt_p(p) if fmt_p(p).startswith("<") else "=" + fmt_p(p))
            if p_holm == p_holm and len(family) > 1:
                p_text += f", Holm {fmt_p(p_holm)}"
            rows[r][c] = f"{fmt(e[m])} ({delta:+.4f}, {p_text}){star}"
    notes = []
    if baseline:
        notes.append(f"Baseline: runs matching `{','.join(f'{k}={v}' for k, v in baseline.items())}` on the same dataset. "
                     f"Cells: value (difference vs baseline, p" + (", Holm-adjusted p" if corrected else "")
                     + f"); * p < {ALPHA}" + (" after Holm's correction" if corrected else "") + ".")
        notes.append(f"Tests: graded metrics — {PERMUTATION}; binary metrics (evidence_coverage) — {MCNEMAR}; "
                     "queries paired by id."
                     + (" Holm-Bonferroni correction (Holm 1979) over the comparisons of each metric in this table."
                        if corrected else ""))
    return markdown(header, rows) + ("\n\n" + "\n".join(notes) if notes else "") + "\n", table


@register("table", "comparison with significance against --baseline runs (the default)")
def run(ctx: StudyContext) -> StudyResult:
    metrics = ctx.metrics.split(",") if ctx.metrics else list(DEFAULT_METRICS)
    text, table = comparison(ctx.client, ctx.records, parse_filter(ctx.baseline), metrics)
    return StudyResult(text, table)
