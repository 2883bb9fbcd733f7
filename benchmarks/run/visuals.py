"""What a single run shows in MLflow's artifact view: plots of its metrics and its audit as HTML.

* ``metrics_at_k.png`` — nDCG, recall and full-evidence coverage against k (and span recall where gold spans
  exist), titled with the dataset and the pipeline;
* ``by_label.png`` — per failure-mode label (where the queries carry labels): nDCG@10, coverage@10, span recall
  within the context budget and the stale-hit rate (the last two where the label's queries have spans or versions);
* ``audit.html`` — the run audit's self-contained report: the verdicts that need no companion runs
  (``stale_version``, ``chunk_boundary``, ``multi_hop``, ``other``; ``rbench-audit`` adds ``exact_term`` and
  ``routing`` from BM25/dense/route reruns) and the label-free signals of every query.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmarks.diagnosis.page import html_report, summary_text
from benchmarks.diagnosis.run_audit import run_audit, run_signals
from benchmarks.diagnosis.signals import Corpus, not_computed


#: the bars of ``by_label.png``: the headline measures, then the failure-mode measures a label has queries for
BY_LABEL_SERIES = (("ndcg_at_10", "nDCG@10"), ("evidence_coverage_at_10", "coverage@10"),
                   ("span_recall_at_budget", "span recall within budget"), ("stale_hit_rate", "stale hits (lower is better)"))


def metric_plots(folder: Path, metrics: Mapping[str, float], by_label: Mapping[str, Mapping[str, float]],
                 ks: Sequence[int], title: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    series = [("nDCG", "ndcg"), ("Recall", "recall"), ("Evidence coverage", "evidence_coverage"), ("Span recall", "span_recall")]
    for label, key in series:
        ys = [metrics.get(f"{key}_at_{k}") for k in ks]
        if all(y is not None for y in ys):
            ax.plot(range(len(ks)), ys, marker="o", label=label)
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set_xlabel("k (documents; span recall: chunks)")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(folder / "metrics_at_k.png")
    plt.close(fig)
    written.append("metrics_at_k.png")
    labels = [lab for lab in sorted(by_label) if lab != "all"]
    if len(labels) > 1:
        import numpy as np

        fig, ax = plt.subplots(figsize=(7.2, 3.8), dpi=110)
        x = np.arange(len(labels))
        shown = [(m, name) for m, name in BY_LABEL_SERIES if any(m in by_label[lab] for lab in labels)]
        width = 0.8 / len(shown)
        for i, (m, name) in enumerate(shown):
            ys = [by_label[lab].get(m, float("nan")) for lab in labels]  # a label without the measure: no bar
            bars = ax.bar(x - 0.4 + width * (i + 0.5), ys, width, label=name)
            ax.bar_label(bars, [f"{y:.2f}" if y == y else "" for y in ys], fontsize=6, padding=1)
        ax.set_xticks(x, [f"{lab}\n({int(by_label[lab]['n'])})" for lab in labels], fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("score")
        ax.set_xlabel("failure-mode label (queries)")
        ax.set_title(f"{title} — by label", fontsize=10)
        ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.3))
        fig.tight_layout()
        fig.savefig(folder / "by_label.png", bbox_inches="tight")
        plt.close(fig)
        written.append("by_label.png")
    return written


def audit_page(folder: Path, rows: Sequence[Mapping[str, Any]], run: Mapping[str, Mapping[str, float]], dataset: Any,
               chunks: Sequence[Any], title: str) -> str:
    """``audit.html`` for one run, from what the run already has (no companion runs)."""

    meta = {d.id: dict(d.metadata) for d in dataset.corpus}
    verdicts = run_audit(rows, run, meta, {})
    labels = {q.id: q.metadata["label"] for q in dataset.queries if q.metadata.get("label")}
    signals = run_signals(rows, chunks, Corpus.of(dataset.corpus), {})
    skipped = not_computed(companions=False, answers=False)
    text = summary_text(title, rows, verdicts, labels, signals, not_computed=skipped)
    page = html_report(f"Retrieval audit — {title}", rows, verdicts, labels, {d.id: d for d in dataset.corpus}, text,
                       signals=signals, not_computed=skipped)
    (folder / "audit.html").write_text(page, encoding="utf-8")
    return "audit.html"
