"""``rbench-report routing``: the router vs each fixed strategy (quality, cost, routing accuracy)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.evaluation.stats import MCNEMAR, PERMUTATION, fmt, fmt_p, markdown
from benchmarks.tracking.store import ReportError, RunRecord, jsonl_artifact, per_query_rows
from benchmarks.studies.registry import StudyContext, StudyResult, register, compare

#: the route a label's query needs: stale and chunk-boundary questions are single-document look-ups whose
#: fixes are version handling and chunking, not a different retrieval strategy
LABEL_ROUTE = {"simple": "simple", "exact_term": "exact_term", "multi_hop": "multi_hop",
               "stale_version": "simple", "chunk_boundary": "simple"}
STRATEGIES = ("router", "simple", "exact_term", "multi_hop")


def strategy(rec: RunRecord) -> str:
    force = rec.setting("router.rules.force")
    return "router" if force in (None, "") else str(force)


def routes_of(client: Any, rec: RunRecord) -> dict[str, str]:
    return {r["query_id"]: r["route"] for r in jsonl_artifact(client, rec, "decomposition.jsonl") or [] if "route" in r}


def routing(client: Any, records: list[RunRecord], out: str | None) -> tuple[str, list[dict]]:
    latest: dict[tuple[str, str], RunRecord] = {}
    for rec in sorted(records, key=lambda r: r.start_time):
        if rec.setting("router._target_"):  # a router run (any router option)
            latest[(rec.dataset, strategy(rec))] = rec
    if not latest:
        raise ReportError("no router runs (router=rules) in this experiment")
    datasets = sorted({d for d, _ in latest})
    header = ["dataset", "strategy", "nDCG@10", "p vs router", "cov@10", "p vs router", "calls/query", "search ms/query"]
    rows, table = [], []
    text = ""
    for ds in datasets:
        router = latest.get((ds, "router"))
        for name in STRATEGIES:
            rec = latest.get((ds, name))
            if rec is None:
                continue
            n_q = rec.metrics.get("queries_scored", 0) + rec.metrics.get("queries_skipped", 0)
            ms = 1000 * rec.metrics.get("time_search_s", float("nan")) / max(1, n_q)
            p_ndcg = p_cov = float("nan")
            if router is not None and rec is not router:
                p_ndcg = compare(client, router, rec, "ndcg_at_10")[1]
                p_cov = compare(client, router, rec, "evidence_coverage_at_10")[1]
            m = rec.metrics
            rows.append([ds, name if name == "router" else f"fixed: {name}", fmt(m.get("ndcg_at_10", float("nan"))),
                         fmt_p(p_ndcg) if p_ndcg == p_ndcg else "", fmt(m.get("evidence_coverage_at_10", float("nan"))),
                         fmt_p(p_cov) if p_cov == p_cov else "", f"{m.get('retrieval_calls_mean', float('nan')):.2f}", f"{ms:.1f}"])
            table.append({"dataset": ds, "strategy": name, "ndcg_at_10": m.get("ndcg_at_10"),
                          "evidence_coverage_at_10": m.get("evidence_coverage_at_10"),
                          "retrieval_calls_mean": m.get("retrieval_calls_mean"), "search_ms_per_query": ms,
                          "p_ndcg_vs_router": p_ndcg, "p_cov_vs_router": p_cov,
                          **{f"route_share_{r}": m.get(f"route_share_{r}") for r in STRATEGIES[1:]}, "run_id": rec.run_id})
    text += (f"## Query routing vs fixed strategies\n\nEach fixed strategy sends every query to one route "
             f"(`router.rules.force`). calls/query: base-retriever searches per query (a hybrid search is 2). "
             f"p: {PERMUTATION} for nDCG@10, {MCNEMAR} for coverage, against the router.\n\n" + markdown(header, rows) + "\n")
    text += criterion(table)
    acc = accuracy(client, latest)
    if acc:
        text += acc
    if out:
        plot(table, out + ".png")
        text += f"\n![quality vs cost]({Path(out).name}.png)\n"
    return text, table


def criterion(table: list[dict]) -> str:
    lines = []
    for ds in dict.fromkeys(r["dataset"] for r in table):
        rows = {r["strategy"]: r for r in table if r["dataset"] == ds}
        if "router" not in rows or len(rows) < 2:
            continue
        r = rows["router"]
        fixed = [v for k, v in rows.items() if k != "router"]
        best_ndcg = max(fixed, key=lambda x: x["ndcg_at_10"])
        best_cov = max(fixed, key=lambda x: x["evidence_coverage_at_10"])
        ok = (r["ndcg_at_10"] >= best_ndcg["ndcg_at_10"] - 0.01 and
              r["evidence_coverage_at_10"] >= best_cov["evidence_coverage_at_10"] - 0.01)
        cheaper = [f for f in fixed if f["retrieval_calls_mean"] > r["retrieval_calls_mean"]]
        lines.append(f"- {'PASS' if ok and best_ndcg in cheaper and best_cov in cheaper else 'FAIL'} ({ds}): router "
                     f"nDCG@10 {r['ndcg_at_10']:.4f} vs best fixed {best_ndcg['ndcg_at_10']:.4f} ({best_ndcg['strategy']}); "
                     f"coverage@10 {r['evidence_coverage_at_10']:.4f} vs best fixed {best_cov['evidence_coverage_at_10']:.4f} "
                     f"({best_cov['strategy']}); calls/query {r['retrieval_calls_mean']:.2f} vs "
                     f"{best_ndcg['retrieval_calls_mean']:.2f}")
    return ("\n### Router within 0.01 of the best fixed strategy at a lower call count?\n\n" + "\n".join(lines) + "\n") if lines else ""


def accuracy(client: Any, latest: dict[tuple[str, str], RunRecord]) -> str:
    out = []
    for (ds, name), rec in latest.items():
        if name != "router":
            continue
        routes = routes_of(client, rec)
        labels = {r["query_id"]: r["label"] for r in per_query_rows(client, rec) if r.get("label") in LABEL_ROUTE}
        if not labels or not routes:
            continue
        conf: dict[str, Counter] = {}
        for qid, lab in labels.items():
            if qid in routes:
                conf.setdefault(lab, Counter())[routes[qid]] += 1
        right = sum(c[LABEL_ROUTE[lab]] for lab, c in conf.items())
        total = sum(sum(c.values()) for c in conf.values())
        rows = [[lab, LABEL_ROUTE[lab], *(str(conf.get(lab, Counter()).get(r, 0)) for r in STRATEGIES[1:])]
                for lab in LABEL_ROUTE if lab in conf]
        out.append(f"\n### Routing accuracy on {ds}: {right} of {total} ({right / max(1, total):.1%})\n\nLabels map to the "
                   "route they need: `simple`, `exact_term`, `multi_hop` to themselves; `stale_version` and "
                   "`chunk_boundary` to `simple` (single-document look-ups: their fixes are version handling and "
                   "chunking, not another retrieval strategy).\n\n"
                   + markdown(["label", "expected route", *(f"routed {r}" for r in STRATEGIES[1:])], rows) + "\n")
    return "".join(out)


def plot(table: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 4), squeeze=False)
    markers = {"router": "*", "simple": "o", "exact_term": "s", "multi_hop": "^"}
    for ax, ds in zip(axes[0], datasets):
        for r in (r for r in table if r["dataset"] == ds):
            ax.scatter(r["retrieval_calls_mean"], r["ndcg_at_10"], marker=markers.get(r["strategy"], "o"),
                       s=160 if r["strategy"] == "router" else 60, label=r["strategy"])
            ax.annotate(r["strategy"], (r["retrieval_calls_mean"], r["ndcg_at_10"]), fontsize=8,
                        xytext=(5, -10), textcoords="offset points")
        ax.set_xlabel("base-retriever searches per query")
        ax.set_ylabel("nDCG@10")
        ax.set_title(ds)
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register("routing", "router vs fixed strategies: quality, calls per query, routing accuracy")
def run(ctx: StudyContext) -> StudyResult:
    return StudyResult(*routing(ctx.client, ctx.records, ctx.out))
