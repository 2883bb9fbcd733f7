"""Paired significance tests, multiple-comparison notes and table formatting shared by the studies."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.store import RunRecord, per_query

BINARY_PREFIXES = ("evidence_coverage_at_", "train_evidence_coverage_at_")
PERMUTATION = "paired permutation test (two-sided, 10,000 sign flips, seed 0)"
MCNEMAR = "exact McNemar test (two-sided binomial on discordant queries)"
ALPHA = 0.05


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




def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order; NaN stays NaN. Controls the
    family-wise error rate of several comparisons made in one report."""
    idx = [i for i, p in enumerate(pvalues) if p == p]
    m = len(idx)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
