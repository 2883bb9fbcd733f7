"""``rbench-report``: read runs back from MLflow and compare them, with paired significance tests.

    rbench-report --experiment E [--baseline "retriever=bm25"] [--metrics ndcg_at_10,recall_at_100] [--out P]
    rbench-report gap --experiment beir_gap [--out results/beir_gap]
    rbench-report fusion --experiment fusion_sweep [--out results/fusion_scifact]
    rbench-report chunking --experiment chunking_enterprise [--out results/chunking_enterprise]
    rbench-report multihop --experiment multihop [--out results/multihop]
    rbench-report routing --experiment routing [--out results/routing]
    rbench-report gate --experiment multihop_ci --baseline-file results/baselines/multihop_ci.json [--tolerance 0.01] [--update]

Significance is computed from the per-query metrics table every run logs (``per_query.csv``), pairing
queries by id with the baseline run of the same dataset: a two-sided paired permutation test (sign flips
of the per-query differences, 10,000 resamples, fixed seed) for graded metrics, and an exact McNemar test
for binary ones (``evidence_coverage_at_k``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

DEFAULT_METRICS = ("ndcg_at_10", "recall_at_100", "mrr_at_10", "evidence_coverage_at_10")
BINARY_PREFIXES = ("evidence_coverage_at_", "train_evidence_coverage_at_")
IGNORED_PARAM_PREFIXES = ("tracking.", "cache.", "hydra", "data_dir", "dataset.data_dir", "retriever.cache_")
PERMUTATION = "paired permutation test (two-sided, 10,000 sign flips, seed 0)"
MCNEMAR = "exact McNemar test (two-sided binomial on discordant queries)"
ALPHA = 0.05
PUBLISHED = Path(__file__).resolve().parent / "data" / "published.json"


class ReportError(RuntimeError):
    pass


@dataclass
class RunRecord:
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    start_time: int
    _rows: list[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def dataset(self) -> str:
        return self.tags.get("dataset") or self.params.get("dataset.name", "?")

    @property
    def split(self) -> str:
        return self.params.get("dataset.split", "test")


# ------------------------------------------------------------------------------------------ loading
def load_runs(uri: str, experiment: str) -> tuple[Any, list[RunRecord]]:
    """FINISHED runs of ``experiment``; of several runs with one config fingerprint, the latest."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise ReportError(f"no experiment {experiment!r} in {uri}; experiments there: {', '.join(names) or 'none'}")
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=50000)
    latest: dict[str, RunRecord] = {}
    for r in runs:
        key = r.data.tags.get("config_fingerprint", r.info.run_id)
        if key not in latest:
            latest[key] = RunRecord(r.info.run_id, dict(r.data.params), dict(r.data.metrics), dict(r.data.tags),
                                    r.info.start_time)
    if not latest:
        raise ReportError(f"experiment {experiment!r} has no FINISHED runs")
    return client, sorted(latest.values(), key=lambda rec: rec.start_time)


def per_query_rows(client: Any, rec: RunRecord) -> list[dict[str, str]]:
    """The rows of the run's ``per_query.csv`` for its evaluated split (downloaded once per run)."""
    if rec._rows is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = client.download_artifacts(rec.run_id, "per_query.csv", tmp)
            except Exception as err:
                raise ReportError(f"run {rec.run_id} has no per_query.csv artifact ({err})") from None
            with open(path, encoding="utf-8") as fh:
                rec._rows = [row for row in csv.DictReader(fh) if row["split"] == rec.split]
    return rec._rows


def per_query(client: Any, rec: RunRecord) -> dict[str, dict[str, float]]:
    """``{query_id: {metric: value}}`` for the run's evaluated split."""
    meta = {"query_id", "split", "label", "query_class", "n_relevant"}
    return {row["query_id"]: {k: float(v) for k, v in row.items() if k not in meta} for row in per_query_rows(client, rec)}


# ------------------------------------------------------------------------------------------ statistics
def is_binary(metric: str) -> bool:
    return metric.startswith(BINARY_PREFIXES)


def paired_test(metric: str, base: Sequence[float], new: Sequence[float]) -> float:
    """Two-sided p-value of ``new`` vs ``base`` paired by position (see module docstring)."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(new, dtype=float), np.asarray(base, dtype=float)
    if len(x) == 0:
        return float("nan")
    if is_binary(metric):
        b = int(np.sum((y >= 0.5) & (x < 0.5)))
        c = int(np.sum((y < 0.5) & (x >= 0.5)))
        return 1.0 if b + c == 0 else float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)
    if np.allclose(x, y):
        return 1.0
    res = stats.permutation_test((x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples",
                                 vectorized=True, n_resamples=10000, alternative="two-sided",
                                 rng=np.random.default_rng(0))
    return float(res.pvalue)


def compare(client: Any, base: RunRecord, rec: RunRecord, metric: str) -> tuple[float, float, int]:
    """(mean difference rec - base, p-value, paired queries) on the queries both runs scored."""
    a, b = per_query(client, base), per_query(client, rec)
    common = sorted(set(a) & set(b))
    if not common or metric not in next(iter(a.values())):
        return float("nan"), float("nan"), 0
    xs = [b[q][metric] for q in common]
    ys = [a[q][metric] for q in common]
    return sum(xs) / len(xs) - sum(ys) / len(ys), paired_test(metric, ys, xs), len(common)


# ------------------------------------------------------------------------------------------ tables
def parse_filter(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise ReportError(f"--baseline expects key=value[,key=value], got {text!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def matches(rec: RunRecord, filt: dict[str, str]) -> bool:
    return all(rec.params.get(k, rec.tags.get(k)) == v for k, v in filt.items())


def varying_params(records: Sequence[RunRecord]) -> list[str]:
    """Params that differ between the runs. A group whose option varies is shown by its option
    (``versions=decay``), not by every setting inside it."""
    from benchmarks.runner import GROUPS

    keys = sorted({k for r in records for k in r.params})
    varying_groups = {g for g in GROUPS if len({r.params.get(g) for r in records}) > 1}
    out = []
    for k in keys:
        if k.startswith(IGNORED_PARAM_PREFIXES) or k.endswith("_target_") or k in ("dataset", "retriever", "experiment"):
            continue
        if k in ("dataset.name", "dataset.path") or k.split(".", 1)[0] in varying_groups and "." in k:
            continue
        if len({r.params.get(k) for r in records}) > 1:
            out.append(k)
    return out


def fmt(x: float, digits: int = 4) -> str:
    return "—" if x != x else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    if p != p:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def comparison(client: Any, records: list[RunRecord], baseline: dict[str, str], metrics: Sequence[str]) -> tuple[str, list[dict]]:
    metrics = [m for m in metrics if any(m in r.metrics for r in records)]
    if not metrics:
        raise ReportError("none of the requested metrics were logged by these runs")
    varying = varying_params(records)
    # the baseline of a run is the most similar baseline run: same settings and same group options
    similar = varying + [g for g in ("chunker", "retriever", "decomposer", "router", "versions")
                         if len({r.params.get(g) for r in records}) > 1]
    bases = [r for r in records if matches(r, baseline)] if baseline else []
    if baseline and not bases:
        raise ReportError(f"no run matches --baseline {baseline}")
    header = ["dataset", "retriever", "params", "queries", *metrics]
    rows, table = [], []
    for rec in sorted(records, key=lambda r: (r.dataset, r.params.get("retriever", ""), r.start_time)):
        same = [b for b in bases if b.dataset == rec.dataset and b.split == rec.split]
        base = max(same, key=lambda b: sum(b.params.get(k) == rec.params.get(k) for k in similar), default=None)
        params = "; ".join(f"{k}={rec.params.get(k)}" for k in varying if rec.params.get(k) is not None)
        entry = {"run_id": rec.run_id, "dataset": rec.dataset, "retriever": rec.params.get("retriever", ""),
                 "params": params, "queries": int(rec.metrics.get("queries_scored", 0)),
                 "baseline_run_id": base.run_id if base is not None else ""}
        cells = [rec.dataset, entry["retriever"], params or "—", str(entry["queries"])]
        for m in metrics:
            value = rec.metrics.get(m, float("nan"))
            entry[m] = value
            if base is None or base.run_id == rec.run_id:
                cells.append(fmt(value) + (" (baseline)" if base is not None else ""))
                entry[f"{m}_delta"] = entry[f"{m}_p"] = float("nan")
                continue
            delta, p, _ = compare(client, base, rec, m)
            if delta != delta and m in base.metrics:  # not a per-query metric: the difference, untested
                delta = value - base.metrics[m]
            entry[f"{m}_delta"], entry[f"{m}_p"] = delta, p
            star = "*" if p == p and p < ALPHA else ""
            p_text = fmt_p(p)
            cells.append(f"{fmt(value)} ({delta:+.4f}, p{p_text if p_text.startswith('<') else '=' + p_text}){star}")
        rows.append(cells)
        table.append(entry)
    notes = []
    if baseline:
        notes.append(f"Baseline: runs matching `{','.join(f'{k}={v}' for k, v in baseline.items())}` on the same dataset. "
                     f"Cells: value (difference vs baseline, p); * p < {ALPHA}.")
        notes.append(f"Tests: graded metrics — {PERMUTATION}; binary metrics (evidence_coverage) — {MCNEMAR}; "
                     "queries paired by id.")
    return markdown(header, rows) + ("\n\n" + "\n".join(notes) if notes else "") + "\n", table


def write_outputs(out: str | None, text: str, table: list[dict]) -> None:
    print(text)
    if not out:
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out + ".md").write_text(text, encoding="utf-8")
    if table:
        keys = list(dict.fromkeys(k for row in table for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(table)
        Path(out + ".csv").write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {out}.md" + (f" and {out}.csv" if table else ""), file=sys.stderr)


# ------------------------------------------------------------------------------------------ gap
def published() -> dict[str, Any]:
    return json.loads(PUBLISHED.read_text(encoding="utf-8"))


def gap(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    pub = published()
    by_ds: dict[str, dict[str, RunRecord]] = {}
    for rec in records:
        kind = rec.params.get("retriever", "")
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
                                 "dense_model": de.params.get("retriever.model", "") if de else ""}
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
        model = de.params.get("retriever.model", "") if de else ""
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


# ------------------------------------------------------------------------------------------ fusion
def fusion_points(records: list[RunRecord]) -> tuple[list[tuple[float, RunRecord]], list[tuple[int, RunRecord]]]:
    """(BM25 weight, run) for wsum points, sorted by weight; (k, run) for RRF points."""
    wsum, rrf = {}, {}
    for rec in records:  # sorted by start time: the latest run of a point wins
        method = rec.params.get("retriever.fusion")
        if method == "wsum":
            weights = json.loads(rec.params.get("retriever.weights", "null") or "null")
            if weights:
                wsum[round(float(weights[0]), 6)] = rec
        elif method == "rrf":
            rrf[int(rec.params.get("retriever.rrf_k", 60))] = rec
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
        plot_fusion(wsum, rrf, metric, best_w, out + ".png")
        text += f"\n![{metric} vs BM25 weight]({Path(out).name}.png)\n"
    return text, table + points


def plot_fusion(wsum, rrf, metric: str, best_w: float, path: str) -> None:
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
    ax.set_title(f"Hybrid fusion: {metric} vs weight")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ chunking
CHUNK_METRICS = ("evidence_split_rate", "span_recall_at_budget", "span_recall_at_10", "ndcg_at_10", "recall_at_100",
                 "chunk_count", "chunk_tokens_mean")


def chunking(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    """Per chunker x retriever: evidence split rate, span recall at the context budget, doc-level metrics,
    chunk statistics; with significance of doc-level nDCG@10 against ``chunker=none`` (same retriever)."""
    latest: dict[tuple[str, str], RunRecord] = {}
    for rec in records:
        latest[(rec.params.get("chunker", "?"), rec.params.get("retriever", "?"))] = rec
    if not latest:
        raise ReportError("no runs")
    datasets = {rec.dataset for rec in latest.values()}
    if len(datasets) > 1:
        raise ReportError(f"the experiment mixes datasets {sorted(datasets)}; use one experiment per dataset")
    order = ["none", "fixed_64", "fixed_128", "fixed_256", "fixed_tokens", "sentences", "sections", "steps", "qa_pairs", "auto"]
    keys = sorted(latest, key=lambda k: (k[1], order.index(k[0]) if k[0] in order else 99, k[0]))
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
        table.append({"retriever": retr, "chunker": chunker_name, "run_id": rec.run_id, "p_ndcg_at_10_vs_none": p,
                      **{m: rec.metrics.get(m) for m in metrics}})
    budget = next(iter(latest.values())).params.get("metrics.budget", "512")
    text = (f"## Chunkers on {next(iter(datasets))}\n\nevidence_split_rate: share of gold spans no single chunk "
            f"contains whole (lower is better). span_recall_at_budget: share of queries whose top chunks within a "
            f"{budget}-token context contain every gold span whole. p: {PERMUTATION}, doc-level nDCG@10 against "
            "chunker=none with the same retriever.\n\n" + markdown(header, rows) + "\n")
    text += chunking_criteria(table)
    if out and "evidence_split_rate" in metrics:
        plot_chunking(table, out + ".png")
        text += f"\n![split rate and span recall at budget]({Path(out).name}.png)\n"
    return text, table


STRUCTURED = ("sections", "steps", "qa_pairs", "auto")


def chunking_criteria(table: list[dict]) -> str:
    """Does every structure-aware chunker split fewer gold spans than every fixed-size window, and recall
    more spans within the budget than the best fixed-size window? Per retriever; empty when not measurable."""
    lines = []
    for retr in dict.fromkeys(r["retriever"] for r in table):
        rows = {r["chunker"]: r for r in table if r["retriever"] == retr and r.get("evidence_split_rate") is not None}
        fixed = [r for name, r in rows.items() if name.startswith("fixed")]
        structured = [rows[n] for n in STRUCTURED if n in rows]
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
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rbench-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="table", choices=["table", "gap", "fusion", "chunking", "multihop", "gate", "routing"],
                        help="table: comparison with significance (default); gap: the dense-vs-BM25 gap table; "
                             "fusion: the fusion-weight sweep (weight chosen on train, reported on test); "
                             "chunking: split rate and span recall per chunker; multihop: coverage@k per "
                             "decomposer with paired tests; gate: fail (exit 1) on any metric more than "
                             "--tolerance below the baseline file; routing: router vs fixed strategies")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///results/mlflow.db"))
    parser.add_argument("--baseline", default=None, help='param filter for the baseline runs, e.g. "retriever=bm25"')
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    parser.add_argument("--out", default=None, help="write <out>.md and <out>.csv (gap: also <out>.png)")
    parser.add_argument("--baseline-file", default=None, help="gate: the committed baseline (JSON)")
    parser.add_argument("--tolerance", type=float, default=0.01, help="gate: allowed drop below the baseline")
    parser.add_argument("--update", action="store_true", help="gate: rewrite the baseline file from the current runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client, records = load_runs(args.tracking_uri, args.experiment)
        if args.command == "gap":
            text, table = gap(client, records, args.out)
        elif args.command == "fusion":
            text, table = fusion(client, records, args.out)
        elif args.command == "chunking":
            text, table = chunking(client, records, args.out)
        elif args.command == "multihop":
            from benchmarks.multihop import multihop

            text, table = multihop(client, records, args.out)
        elif args.command == "routing":
            from benchmarks.routing_report import routing

            text, table = routing(client, records, args.out)
        elif args.command == "gate":
            from benchmarks.multihop import gate

            if not args.baseline_file:
                raise ReportError("gate needs --baseline-file")
            passed, text = gate(records, args.baseline_file, args.tolerance, experiment=args.experiment, update=args.update)
            print(text)
            return 0 if passed else 1
        else:
            text, table = comparison(client, records, parse_filter(args.baseline), args.metrics.split(","))
    except ReportError as err:
        print(f"rbench-report: error: {err}", file=sys.stderr)
        return 2
    write_outputs(args.out, text, table)
    return 0
