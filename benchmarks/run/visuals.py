"""What a single run shows in MLflow's artifact view: plots of its metrics and its audit as HTML.

* ``metrics_at_k.png`` — nDCG, recall and full-evidence coverage against k (and span recall where gold spans
  exist), titled with the dataset and the pipeline;
* ``by_label.png`` — nDCG@10 and coverage@10 per failure-mode label, where the queries carry labels;
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

        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        x = np.arange(len(labels))
        ax.bar(x - 0.2, [by_label[lab]["ndcg_at_10"] for lab in labels], 0.4, label="nDCG@10")
        ax.bar(x + 0.2, [by_label[lab]["evidence_coverage_at_10"] for lab in labels], 0.4, label="coverage@10")
        ax.set_xticks(x, [f"{lab}\n({int(by_label[lab]['n'])})" for lab in labels], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        ax.set_xlabel("failure-mode label (queries)")
        ax.set_title(f"{title} — by label", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "by_label.png")
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
