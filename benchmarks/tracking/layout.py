"""How a run reads in MLflow: the headline metrics under their contract names at the top level, every other
metric in a group (``at_k/recall_at_10``, ``cost/time_search_s``, ``stats/num_chunks``), params without
``_target_`` paths and in the order a person varies them, a description, and the experiment's default view
(the runs table with the pipeline and the headline columns), opened by the URL ``rbench`` prints.

A metric's contract name is its logged name after the last ``/`` (:func:`contract_metrics`): readers of the
store (reports, studies, gates) see the contract's names whatever the grouping, and stores written before the
grouping read the same."""

from __future__ import annotations

import json
import re
from typing import Mapping, Sequence
from urllib.parse import quote

from benchmarks.paths import is_place, runnable
from benchmarks.tracking.groups import GROUPS
from retrievers.pipeline import DEFAULT_PIPELINE
from retrievers.infrastructure.redact import redact_text

#: the headline measures, in the order the runs table and the description show them; recall is read at the
#: largest k (BEIR's Recall@100), the others at ``metrics.headline_k``
HEADLINE_MEASURES = ("ndcg", "recall", "mrr", "evidence_coverage")
#: the failure-mode measures, shown beside the headline ones (top level, runs table, description) in every run
#: that computed them: the share of queries whose gold spans fit whole in the chunks within the context budget,
#: the share of version queries where a superseded document outranks the current one, and the share of gold
#: spans that no single chunk holds whole (the last two: lower is better)
FAILURE_MEASURES = ("span_recall_at_budget", "stale_hit_rate", "evidence_split_rate")
LABELS = {"ndcg": "nDCG", "recall": "Recall", "mrr": "MRR", "evidence_coverage": "Coverage",
          "span_recall_at_budget": "Span recall@budget", "stale_hit_rate": "Stale hits@10",
          "evidence_split_rate": "Split evidence"}
#: metrics about what a run cost (time, encoder and index work, retrieval calls), grouped under ``cost/``
_COST = re.compile(r"^(time_|retrieval_calls|encoded_|index_builds|cache_|llm_|decomposed_)")
_AT_K = re.compile(r"_at_(\d+|budget)$")

#: the experiment tag MLflow's UI reads a shared view from (``?viewStateShareKey=rbench``), and the URL
#: parameter that opens MLflow 3's model-training pages instead of its GenAI overview
VIEW_KEY = "rbench"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
WORKFLOW = "workflowType=machine_learning"
RUN_NAME_COLUMN = "attributes.`Run Name`"


def headline_k(ks: Sequence[int], configured: int | None = None) -> int:
    """``metrics.headline_k``, or 10 when it is listed, else the nearest listed k (the smaller on a tie)."""
    if configured is not None:
        return int(configured)
    return min(ks, key=lambda k: (abs(k - 10), k))


def headline(ks: Sequence[int], configured: int | None = None) -> list[str]:
    """The headline metrics' contract names: ``ndcg_at_10, recall_at_100, mrr_at_10, evidence_coverage_at_10``."""
    k = headline_k(ks, configured)
    return [f"{m}_at_{max(ks) if m == 'recall' else k}" for m in HEADLINE_MEASURES]


def failure_heads(metrics: Mapping[str, float]) -> list[str]:
    """The :data:`FAILURE_MEASURES` this run computed (a number, not NaN), in that order."""
    return [m for m in FAILURE_MEASURES if m in metrics and metrics[m] == metrics[m]]


def label(name: str) -> str:
    """``ndcg_at_10`` -> ``nDCG@10``, ``evidence_coverage_at_10`` -> ``Coverage@10``,
    ``stale_hit_rate`` -> ``Stale hits@10``."""
    if name in LABELS:
        return LABELS[name]
    measure, _, k = name.rpartition("_at_")
    return f"{LABELS.get(measure, measure)}@{k}" if measure else name


def logged_name(name: str, heads: Sequence[str]) -> str:
    """The name a contract metric is logged under: a headline at the top level, the rest in a group."""
    if name in heads:
        return name
    if _AT_K.search(name):
        return f"at_k/{name}"
    if _COST.match(name):
        return f"cost/{name}"
    return f"stats/{name}"


#: decimal places of a logged metric (what the runs table shows); the exact values are in the run's
#: ``summary.json`` and ``per_query.csv`` artifacts and in what ``rbench``/the Python API return
PLACES = 4


def logged_metrics(metrics: Mapping[str, float], heads: Sequence[str]) -> dict[str, float]:
    """Headline metrics first, then the groups, rounded to :data:`PLACES`; insertion order is logging order."""
    named = {logged_name(k, heads): round(float(v), PLACES) for k, v in metrics.items()}
    return {k: named[k] for k in sorted(named, key=lambda k: (k not in heads, heads.index(k) if k in heads else 0, k))}


def contract_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """Logged names back to the contract's (``at_k/recall_at_10`` -> ``recall_at_10``); older runs unchanged."""
    return {k.rsplit("/", 1)[-1]: v for k, v in metrics.items() if not k.startswith("system/")}


#: the group options in the order a person varies them (the first stage, then the stages around it)
STAGES = ("retriever", "router", "chunker", *DEFAULT_PIPELINE)


def _rank(key: str) -> tuple[int, int, str]:
    """Params in the order a person varies them: the stage options, the other group options (dataset,
    experiment), each stage's settings, the dataset's, then everything else (outputs and limits last)."""
    if is_place(key):  # where things were read and written: last
        return (4, 0, key)
    if key in STAGES:
        return (0, STAGES.index(key), key)
    if key in GROUPS:
        return (1, 0, key)
    order = [*STAGES, "dataset", "top_k", "metrics"]
    head = key.split(".", 1)[0]
    return (2, order.index(head), key) if head in order else (3, 0, key)


def ordered_params(params: Mapping[str, str]) -> dict[str, str]:
    """Without ``_target_`` class paths (they are in the ``components`` tag), in the order of :func:`_rank`."""
    kept = {k: v for k, v in params.items() if not k.endswith("_target_")}
    return {k: kept[k] for k in sorted(kept, key=_rank)}


def components(params: Mapping[str, str]) -> str:
    """The classes the run built, one JSON tag (``{"retriever": "retrievers.bm25.BM25Retriever", ...}``)."""
    return json.dumps({k[: -len("._target_")]: v for k, v in params.items() if k.endswith("._target_")},
                      sort_keys=True)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def description(*, pipeline: str, dataset: str, split: str, queries: int, documents: int,
                metrics: Mapping[str, float], heads: Sequence[str], varied: Sequence[str] = (),
                fingerprint: str = "") -> str:
    """The run page's description (MLflow's ``mlflow.note.content``, markdown): what ran, on what, and the
    measures in ``heads`` (the headline ones, then the failure-mode ones) rounded to four places. They are a
    fixed-width block, not a pipe table: MLflow's UI gives a description's table cells no padding, so a table's
    headers read as one word (``nDCG@10Recall@100``)."""
    cols = [label(h) for h in heads]
    widths = [max(len(c), 6) for c in cols]
    lines = [f"**{pipeline}** on **{dataset}** [{split}]: {queries:,} queries scored, {documents:,} documents.", "",
             "```", "   ".join(c.rjust(w) for c, w in zip(cols, widths)),
             "   ".join(_fmt(metrics.get(h)).rjust(w) for h, w in zip(heads, widths)), "```", ""]
    lower = [label(h) for h in heads if h in ("stale_hit_rate", "evidence_split_rate")]
    if lower:
        lines += [f"Lower is better for {' and '.join(lower)}; higher for the rest.", ""]
    if varied:
        lines += ["This point's own settings: " + ", ".join(f"`{v}`" for v in varied) + ".", ""]
    lines.append("Other metrics: `at_k/` (every k), `cost/` (time, encoding, calls), `stats/` (corpus and chunks). "
                 "Values are rounded to four places; exact ones are in `summary.json`. "
                 "Artifacts: `per_query.csv`, `run.trec`, `audit.html`, plots (`by_label.png`: each measure per "
                 "failure-mode label)." +
                 (f" Config fingerprint `{fingerprint[:12]}`." if fingerprint else ""))
    return "\n".join(lines)


def column_width(column: str) -> int:
    """A metric column wide enough for its header (``metrics.`span_recall_at_budget```: 21 characters)."""
    return max(90, 7 * len(column[len("metrics.`"):-1]) + 12)


def view_state(heads: Sequence[str], param_columns: Sequence[str], previous: str | None = None) -> str:
    """The experiment's shared view: the runs table showing the headline metrics and the failure-mode measures
    (``heads``) right after the run's name, then the group options and a sweep's varied keys; sorted by the first
    headline metric. The param and metric columns of earlier runs are kept."""
    cols: list[str] = []
    earlier: list[str] = []
    try:
        old = json.loads(previous) if previous else {}
        cols = [c for c in old.get("selectedColumns", []) if c.startswith("params.")]
        earlier = [c for c in old.get("selectedColumns", []) if c.startswith("metrics.")]
    except (ValueError, AttributeError):
        cols, earlier = [], []
    for p in param_columns:
        c = f"params.`{p}`"
        if c not in cols:
            cols.append(c)
    cols.sort(key=lambda c: _rank(c[len("params.`"):-1]))
    metrics = [f"metrics.`{h}`" for h in heads]
    metrics += [c for c in earlier if c not in metrics]  # another run's failure-mode columns stay
    order = {f"metrics.`{m}`": i for i, m in enumerate(FAILURE_MEASURES)}
    metrics = [c for c in metrics if c not in order] + sorted((c for c in metrics if c in order), key=order.get)
    state = {"selectedColumns": ["attributes.`Dataset`", *cols, *metrics],
             # the headline metrics right after the run's name, then the pipeline; names wide enough to read
             "columnOrder": [RUN_NAME_COLUMN, *metrics, *cols, "attributes.`Dataset`"],
             "columnWidths": {RUN_NAME_COLUMN: 300, **{c: column_width(c) for c in metrics}},
             "orderByKey": metrics[0], "orderByAsc": False, "runsHiddenMode": "SHOW_ALL"}
    return json.dumps(state)


def ui_base(uri: str) -> tuple[str, str | None]:
    """Where the MLflow UI of a tracking URI is, and the command that serves it when none runs yet."""
    if uri.startswith(("http://", "https://")):
        return redact_text(uri).rstrip("/"), None
    return "http://127.0.0.1:5000", f"{runnable('mlflow')} ui --backend-store-uri {redact_text(uri)}"


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    base, _ = ui_base(uri)
    return f"{base}/#/experiments/{quote(str(experiment_id))}/runs/{run_id}?{WORKFLOW}"


def table_url(uri: str, experiment_id: str) -> str:
    base, _ = ui_base(uri)
    return f"{base}/#/experiments/{quote(str(experiment_id))}/runs?{WORKFLOW}&viewStateShareKey={VIEW_KEY}"


def print_urls(uri: str, experiment_id: str, run_id: str) -> list[str]:
    """The lines ``rbench`` prints after a run: the run page, the runs table, and how to serve a local store."""
    _, serve = ui_base(uri)
    lines = [f"MLflow: {run_url(uri, experiment_id, run_id)}",
             f"        runs table: {table_url(uri, experiment_id)}"]
    if serve:
        lines.append(f"        (serve it first: {serve})")
    return lines
