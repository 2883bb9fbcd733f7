"""The Python API: evaluate a run you already have, with the contract's metric names.

    from benchmarks import evaluate
    evaluate({"q1": {"d1": 2.0, "d2": 1.0}}, {"q1": {"d2": 1}}, k=[1, 10])
    evaluate("runs/bm25.trec", "qrels/test.tsv", k=[10, 100])   # TREC run file, TREC or BEIR qrels

Metrics are ranx's (numpy, no JIT; :mod:`benchmarks.evaluation.metrics`): ``ndcg_at_k``, ``recall_at_k``, ``mrr_at_k``,
``map_at_k`` and ``evidence_coverage_at_k`` (every relevant document in the top k), averaged over the
queries with at least one relevant judgment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence, Union

from retrievers.types import Qrels, Run
from benchmarks.evaluation.trec import read_run
from benchmarks.datasets.beir import read_qrels
from benchmarks.evaluation.metrics import evaluate as _evaluate
from benchmarks.run import runner
from benchmarks import resolvers  # noqa: F401 - registers ${rbench.*} before any config is composed
from benchmarks.paths import CONF_DIR
from retrievers import custom

RunLike = Union[Mapping[str, Mapping[str, float]], str, Path]
QrelsLike = Union[Mapping[str, Mapping[str, int]], str, Path]


def _run(run: RunLike) -> Run:
    if isinstance(run, (str, Path)):

        return read_run(Path(run))
    return {str(q): {str(d): float(s) for d, s in hits.items()} for q, hits in run.items()}


def _qrels(qrels: QrelsLike) -> Qrels:
    if isinstance(qrels, (str, Path)):

        return read_qrels(Path(qrels))[0]
    return {str(q): {str(d): int(s) for d, s in rels.items()} for q, rels in qrels.items()}


def evaluate(run: RunLike, qrels: QrelsLike, k: Sequence[int] = (1, 5, 10, 100), *,
             per_query: bool = False) -> dict:
    """Mean of every contract metric at every k (with ``per_query``: ``{"mean": ..., "per_query": {qid: ...},
    "skipped": [...]}``). ``run`` and ``qrels`` are dicts or file paths (a TREC run; TREC or BEIR-tsv qrels)."""

    ks = [int(x) for x in k]
    if not ks or any(x < 1 for x in ks):
        raise ValueError(f"k must be a non-empty list of integers >= 1, got {list(k)}")
    ev = _evaluate(_qrels(qrels), _run(run), ks)
    if per_query:
        return {"mean": ev.mean, "per_query": ev.per_query, "skipped": ev.skipped}
    return dict(ev.mean)


def run(overrides: Sequence[str] = (), *, config_dir: str | Path | None = None) -> dict:
    """Build and run a configured pipeline from Python, exactly as ``rbench <overrides>`` would (validated
    first, logged to MLflow): returns ``{"run_id", "metrics", "run"}`` (the document run of the evaluated split).

        from benchmarks.api import run
        out = run(["retriever=hybrid", "reranker=bi_encoder", "dataset.limit=20"])
    """
    from hydra import compose, initialize_config_dir


    with initialize_config_dir(config_dir=str(config_dir or CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    result = runner.run_experiment(cfg)
    return {"run_id": result.run_id, "metrics": dict(result.metrics), "run": result.run}


def evaluate_retriever(search, overrides: Sequence[str] = (), *, config_dir: str | Path | None = None) -> dict:
    """Score your own retriever on any configured dataset, through the same runner, metrics and MLflow logging:
    ``search(query_texts, top_k) -> list of {doc_id: score}`` (one dict per query, document ids of the corpus).

        def my_search(texts, top_k):
            return [{"POL-100-v4": 1.0} for _ in texts]
        evaluate_retriever(my_search, ["dataset.limit=10"])

    In a config, the same is ``retriever._target_=retrievers.custom.FunctionRetriever
    retriever.function=my_module.my_search`` (an import path), or any class with ``index`` + ``search``
    (chunk level) or ``index`` + ``rank`` (a pipeline stage)."""

    key = custom.register(search)
    return run([*overrides, "retriever=function", f"retriever.function={key}"], config_dir=config_dir)
