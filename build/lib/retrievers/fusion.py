"""Rank fusion of document-level runs, delegated to ``ranx.fuse`` (Bassani 2022).

Methods and their references (ranx names): ``wsum`` weighted sum of normalised scores (Fox & Shaw 1994,
weighted CombSUM); ``rrf`` reciprocal rank fusion, score = sum 1 / (k + rank) (Cormack, Clarke & Büttcher,
SIGIR 2009); ``combsum``, ``combmnz``, ``combmax`` ... (Fox & Shaw 1994). Normalisations: ``min-max``,
``max``, ``sum``, ``zmuv`` (zero mean, unit variance), ``rank``, ``borda``.

ranx is the reference for every method. The two that fusion sweeps run many times — ``wsum`` over
``min-max`` scores and ``rrf`` — are also computed directly here (:func:`fast_fuse`), because converting
runs to and from ranx's numba dictionaries costs ~1.5 s per call on scifact (plus a few seconds of JIT
compilation per process), which would dominate a sweep whose base runs are cached. Tests assert that both
paths give the same scores as ``ranx.fuse``.
"""

from __future__ import annotations

from typing import Sequence

from retrievers.types import Run
from retrievers.base import top_k_of


def _params(method: str, n: int, weights: Sequence[float] | None, rrf_k: int) -> dict:
    if method in ("wsum", "w_bordafuse", "w_condorcet", "mixed"):
        w = list(weights) if weights is not None else [1.0 / n] * n
        if len(w) != n:
            raise ValueError(f"retriever.weights needs one weight per base retriever ({n}), got {len(w)}")
        return {"weights": [float(x) for x in w]}
    if method == "rrf":
        return {"k": int(rrf_k)}
    return {}


#: ranx's unsupervised fusion methods (the supervised ones — bayesfuse, mapfuse, posfuse, probfuse, segfuse,
#: slidefuse — need training runs and are not offered) and its normalisations
METHODS: tuple[str, ...] = ("wsum", "rrf", "sum", "mnz", "max", "min", "med", "anz", "gmnz", "wmnz", "isr", "log_isr",
                            "logn_isr", "bordafuse", "w_bordafuse", "condorcet", "w_condorcet", "rbc", "mixed")
NORMS: tuple[str, ...] = ("min-max", "max", "sum", "zmuv", "rank", "borda", "min-max-inverted")


def check_fusion(method: str, norm: str | None) -> None:
    if method not in METHODS:
        raise ValueError(f"retriever.fusion must be one of {'|'.join(METHODS)}, got {method!r}")
    if norm is not None and norm not in NORMS:
        raise ValueError(f"retriever.norm must be one of {'|'.join(NORMS)}|null, got {norm!r}")


FAST = {("wsum", "min-max"), ("rrf", "min-max"), ("rrf", None)}


def _min_max(hits: dict[str, float]) -> dict[str, float]:
    """ranx's min-max: (s - min) / max(max - min, 1e-9)."""
    lo, hi = min(hits.values()), max(hits.values())
    den = max(hi - lo, 1e-9)
    return {d: (s - lo) / den for d, s in hits.items()}


PER_QUERY = ("rrf", "max", "sum")


def fuse_rankings(rankings: Sequence[dict[str, float]], *, method: str = "rrf", rrf_k: int = 60,
                  top_k: int | None = None) -> dict[str, float]:
    """Fuse one query's rankings (their number may vary per query, which ``ranx.fuse`` cannot take):
    ``rrf`` sums 1/(k + rank) with ranks in canonical order (Cormack et al., SIGIR 2009), ``max`` keeps a
    document's best score, ``sum`` adds its scores (CombMAX / CombSUM, Fox & Shaw 1994)."""
    if method not in PER_QUERY:
        raise ValueError(f"per-query fusion must be one of {'|'.join(PER_QUERY)}, got {method!r}")
    acc: dict[str, float] = {}
    for ranking in rankings:
        for rank, (doc, score) in enumerate(top_k_of(ranking).items(), 1):
            if method == "rrf":
                acc[doc] = acc.get(doc, 0.0) + 1.0 / (rrf_k + rank)
            elif method == "max":
                acc[doc] = max(acc.get(doc, float("-inf")), score)
            else:
                acc[doc] = acc.get(doc, 0.0) + score
    return top_k_of(acc, top_k)


def fast_fuse(runs: Sequence[Run], *, method: str, weights: Sequence[float] | None = None, rrf_k: int = 60,
              top_k: int | None = None) -> Run:
    """``wsum`` of min-max scores, or ``rrf`` (ranks in canonical order), without ranx's conversions."""
    params = _params(method, len(runs), weights, rrf_k)
    qids = list(dict.fromkeys(q for run in runs for q in run))
    out: Run = {}
    for q in qids:
        if method == "rrf":
            out[q] = fuse_rankings([run[q] for run in runs if run.get(q)], method="rrf", rrf_k=params["k"], top_k=top_k)
            continue
        acc: dict[str, float] = {}
        for w, run in zip(params["weights"], runs):
            for d, s in (_min_max(run[q]) if run.get(q) else {}).items():
                acc[d] = acc.get(d, 0.0) + w * s
        out[q] = top_k_of(acc, top_k)
    return out


def fuse(runs: Sequence[Run], *, method: str = "wsum", norm: str | None = "min-max",
         weights: Sequence[float] | None = None, rrf_k: int = 60, top_k: int | None = None) -> Run:
    """Fuse several runs into one (inputs untouched). ``ranx.fuse`` needs every run to hold the same
    queries, each with at least one hit, so queries are grouped by which runs answered them; a query only
    one run answered keeps that run's normalised ranking (weighted for ``wsum``)."""
    if len(runs) < 2:
        raise ValueError("fusion needs at least two runs")
    if (method, norm) in FAST:
        return fast_fuse(runs, method=method, weights=weights, rrf_k=rrf_k, top_k=top_k)
    return ranx_fuse_runs(runs, method=method, norm=norm, weights=weights, rrf_k=rrf_k, top_k=top_k)


def ranx_fuse_runs(runs: Sequence[Run], *, method: str = "wsum", norm: str | None = "min-max",
                   weights: Sequence[float] | None = None, rrf_k: int = 60, top_k: int | None = None) -> Run:
    """The same through ``ranx.fuse`` (any method and normalisation ranx offers)."""
    from ranx import Run as RRun, fuse as ranx_fuse, normalize as ranx_normalize

    params = _params(method, len(runs), weights, rrf_k)
    qids = list(dict.fromkeys(q for run in runs for q in run))
    groups: dict[tuple[int, ...], list[str]] = {}
    for q in qids:
        members = tuple(i for i, run in enumerate(runs) if run.get(q))
        groups.setdefault(members, []).append(q)
    out: Run = {}
    for members, group in groups.items():
        if not members:
            out.update({q: {} for q in group})
            continue
        sub = [RRun({q: dict(runs[i][q]) for q in group}) for i in members]
        if len(members) == 1:
            scale = params.get("weights", [1.0] * len(runs))[members[0]] if method == "wsum" else 1.0
            if method == "rrf":
                fused = {q: fuse_rankings([runs[members[0]][q]], rrf_k=params["k"]) for q in group}
            else:
                normed = ranx_normalize(sub[0], norm) if norm else sub[0]
                fused = {q: {d: scale * s for d, s in hits.items()} for q, hits in normed.to_dict().items()}
        else:
            sub_params = dict(params)
            if "weights" in params:
                sub_params["weights"] = [params["weights"][i] for i in members]
            fused = ranx_fuse(sub, norm=norm, method=method, params=sub_params).to_dict()
        for q in group:
            out[q] = top_k_of({d: float(s) for d, s in fused.get(q, {}).items()}, top_k)
    return {q: out[q] for q in qids}
