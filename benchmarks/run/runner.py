"""One experiment point: load -> chunk -> index -> search -> aggregate -> evaluate -> log."""

from __future__ import annotations

import csv
import functools
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from chunkers.types import Query
from benchmarks.tracking import provenance
from benchmarks.datasets.base import Dataset
from benchmarks.tracking.groups import group_choices
from benchmarks.evaluation.metrics import COVERAGE, MEASURES, Evaluation, evaluate, metric_name, metric_names
from benchmarks.run.retrieval import Retrieval, load_dataset, retrieve
from benchmarks.datasets import limits
from benchmarks.errors import ConfigError, RbenchError, TrackingError
from benchmarks.tracking.tracker import check_reachable, check_store
from retrievers.infrastructure.redact import redact_text
from retrievers.infrastructure.safe_write import unwritable
from retrievers.pipeline import DEFAULT_PIPELINE
from retrievers.query_features import ExactTermRule
from benchmarks.evaluation.evidence import chunk_stats, evidence_metrics
from benchmarks.evaluation.metrics import stale_hit, stale_hit_rate, stale_sets
from retrievers.base import top_k_of
from benchmarks.evaluation.trec import write_qrels, write_run
from benchmarks.run.visuals import audit_page, metric_plots
from benchmarks.tracking import layout
from benchmarks.tracking.tracker import flatten
from benchmarks.tracking.helper import tracker_for
from benchmarks.run.validate import validate
from retrievers.pipeline import build_pipeline
from benchmarks.tracking.groups import GROUPS, describe, routes
from benchmarks.tracking.tracker import run_name, varied_settings
from benchmarks.evaluation.evidence import BudgetContext
from retrievers.infrastructure.safe_write import writing
from benchmarks.diagnosis.records import audit_rows
from retrievers.infrastructure.redact import redact_config
from retrievers.infrastructure.errors import RetrieverError, out_of_space

log = logging.getLogger(__name__)


def _label(q: Query) -> str:
    meta = q.metadata
    for key in ("label", "type", "hops"):
        if meta.get(key) not in (None, ""):
            return f"{meta[key]}hop" if key == "hops" else str(meta[key])
    return ""


def write_per_query(path: Path, rows: Sequence[tuple[str, Query, Evaluation, dict[str, int]]], ks: Sequence[int],
                    query_class: Any = None) -> None:
    """One row per scored query: id, split, label, exact-term class, relevant count, every metric."""
    columns = metric_names(sorted(ks))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query_id", "split", "label", "query_class", "n_relevant", *columns])
        for split, q, ev, rel in rows:
            scores = ev.per_query.get(q.id)
            if scores is None:
                continue
            writer.writerow([q.id, split, _label(q), query_class(q.text) if query_class else "",
                             sum(1 for s in rel.values() if s > 0),
                             *(f"{scores[c]:.6f}" for c in columns)])


def print_summary(dataset: Dataset, ev: Evaluation, ks: Sequence[int], title: str, by_label: dict[str, dict[str, float]],
                  footer: str) -> None:
    ks = sorted(ks)
    unjudged = sum(1 for q in dataset.queries if q.id not in dataset.qrels)  # in the split, run, not scored
    # queries of the file that no split judges are left out by the loader (note "unjudged queries left out"): they
    # are not among the skipped, which count this split's queries only
    out = [f"\n{title}", f"{dataset.name} [{dataset.split}]: {ev.n_scored} queries scored, {ev.n_skipped + unjudged} skipped "
           f"(no relevant judgments{f'; {unjudged} retrieved and audited, not scored' if unjudged else ''}); "
           f"{len(dataset.corpus)} documents"]
    for key, value in dataset.notes.items():
        if value:
            out.append(f"  note: {key.replace('_', ' ')}: {value}")
    out += metric_table(ev.mean, ks)
    if len(by_label) > 1:
        out.append(f"\n{'by label':18}{'queries':>9}{'ndcg@10':>9}{'cov@10':>9}{'span@budget':>12}{'stale hits':>11}")
        for label, row in sorted(by_label.items()):
            extra = "".join(f"{row[m]:>{w}.4f}" if m in row else f"{'–':>{w}}" for m, w in zip(LABEL_MEASURES[2:], (12, 11)))
            out.append(f"{label:18}{int(row['n']):>9}{row['ndcg_at_10']:>9.4f}{row['evidence_coverage_at_10']:>9.4f}{extra}")
    out.append(footer)
    print("\n".join(out), flush=True)


def metric_table(metrics: Mapping[str, float], ks: Sequence[int]) -> list[str]:
    """The metrics-by-k lines of the summary (``nan`` where a metric was not logged)."""
    ks = sorted(ks)
    out = [f"{'':18}" + "".join(f"{'@' + str(k):>9}" for k in ks)]
    for m in (*MEASURES, COVERAGE):
        out.append(f"{m:18}" + "".join(f"{metrics.get(metric_name(m, k), float('nan')):>9.4f}" for k in ks))
    return out


#: the measures of each failure-mode label (``by_label`` in ``summary.json``, the ``by_label.png`` plot, the
#: story's table): span recall within the budget where the label's queries have gold spans, the stale-hit rate
#: where they ask about a versioned document; a measure a label has no query for is left out
LABEL_MEASURES = ("ndcg_at_10", "evidence_coverage_at_10", "span_recall_at_budget", "stale_hit_rate")


def breakdown(queries: Sequence[Query], ev: Evaluation, *, rows: Sequence[Mapping[str, Any]] = (),
              run: Mapping[str, Mapping[str, float]] | None = None,
              sets: Mapping[str, tuple[set[str], set[str]]] | None = None) -> dict[str, dict[str, float]]:
    """Per label of the scored queries (``all`` where they carry none): ``n`` and :data:`LABEL_MEASURES` —
    nDCG@10 and coverage@10 from the evaluation, span recall at budget from the audit ``rows``
    (``span_level_ok``), the stale-hit rate from the ``run`` and the version ``sets``
    (:func:`benchmarks.evaluation.metrics.stale_sets`)."""
    spans = {r["query_id"]: bool(r["span_level_ok"]) for r in rows if "span_level_ok" in r}
    groups: dict[str, list[Query]] = {}
    for q in queries:
        if q.id in ev.per_query:
            groups.setdefault(_label(q) or "all", []).append(q)
    out = {}
    for label, qs in groups.items():
        n = len(qs)
        row: dict[str, float] = {"n": n, **{c: sum(ev.per_query[q.id].get(c, 0.0) for q in qs) / n
                                            for c in ("ndcg_at_10", "evidence_coverage_at_10")}}
        span = [spans[q.id] for q in qs if q.id in spans]
        if span:
            row["span_recall_at_budget"] = sum(span) / len(span)
        stale = [stale_hit(list(top_k_of((run or {}).get(q.id, {}))), *sets[q.id]) for q in qs if q.id in (sets or {})]
        if stale:
            row["stale_hit_rate"] = sum(stale) / len(stale)
        out[label] = row
    return out


_RULES: dict[str, Any] = {}
def exact_term_rule(dataset: Dataset) -> Any:
    """The exact-term rule with this corpus's document frequencies (built once per process per corpus,
    so the points of a sweep share it)."""

    key = dataset.fingerprint()
    if key not in _RULES:
        _RULES[key] = ExactTermRule.from_corpus(f"{d.title}\n{d.text}" for d in dataset.corpus)
    return _RULES[key]


def collect_metrics(dataset: Dataset, result: Retrieval, ev: Evaluation, tune_ev: Evaluation | None,
                    ks: Sequence[int], *, budget: int, context: Any = None,
                    sets: Mapping[str, tuple[set[str], set[str]]] | None = None) -> dict[str, float]:
    """Everything a run logs as MLflow metrics (the contract's names, costs, chunk and evidence metrics).
    ``context``: the run's :class:`benchmarks.evaluation.evidence.BudgetContext`, shared with the audit."""

    metrics: dict[str, float] = dict(ev.mean)
    if tune_ev is not None:
        metrics.update({f"train_{k}": v for k, v in tune_ev.mean.items()})
    metrics.update(result.timings)
    metrics.update(result.ranking.stats)
    metrics["retrieval_calls_mean"] = result.ranking.calls_mean()  # base-retriever searches per evaluated query
    unjudged = sum(1 for q in dataset.queries if q.id not in dataset.qrels)  # in the split, run, not scored
    # queries of the file that no split judges are left out by the loader (note "unjudged queries left out"): they
    # are not among the skipped, which count this split's queries only
    metrics.update({"queries_scored": ev.n_scored, "queries_skipped": ev.n_skipped + unjudged,
                    "num_documents": len(dataset.corpus), "num_chunks": len(result.chunks)})
    metrics.update({f"dataset_{k}": v for k, v in dataset.notes.items()})

    sets = stale_sets(dataset.queries, dataset.qrels, dataset.corpus) if sets is None else sets
    if sets:
        metrics["stale_hit_rate"] = stale_hit_rate(sets, result.run, k=10)
        metrics["stale_queries"] = len(sets)
    metrics.update(chunk_stats(result.chunks))
    metrics.update(evidence_metrics(result.chunks, dataset.queries, result.chunk_run, ks=ks, budget=budget,
                                    context=context))
    return metrics


def write_artifacts(folder: Path, dataset: Dataset, result: Retrieval, ev: Evaluation, tune_ev: Evaluation | None,
                    ks: Sequence[int], *, tag: str) -> None:
    """TREC run and qrels files (and the tuning split's), and the per-query metrics table."""

    write_run(result.run, folder / "run.trec", tag=tag)
    write_qrels(dataset.qrels, folder / "qrels.trec")
    rows = [(dataset.split, q, ev, dataset.qrels.get(q.id, {})) for q in dataset.queries]
    if tune_ev is not None:
        write_run(result.tune_run, folder / f"run_{dataset.tune_split}.trec", tag=tag)
        write_qrels(dataset.tune_qrels, folder / f"qrels_{dataset.tune_split}.trec")
        rows += [(dataset.tune_split, q, tune_ev, dataset.tune_qrels.get(q.id, {})) for q in dataset.tune_queries]
    write_per_query(folder / "per_query.csv", rows, ks, query_class=exact_term_rule(dataset))


def write_jsonl(path: Path, rows: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_visuals(folder: Path, metrics: dict[str, float], by_label: dict[str, dict[str, float]], ks: Sequence[int],
                  rows: Sequence[dict[str, Any]], result: Retrieval, dataset: Dataset, title: str) -> None:
    """The run's plots and audit page (``benchmarks.run.visuals``); a failure here is reported, never fatal:
    the metrics and the other artifacts are logged either way."""
    import sys


    for what, make in (("plots", lambda: metric_plots(folder, metrics, by_label, ks, title)),
                       ("audit.html", lambda: audit_page(folder, rows, result.run, dataset, result.chunks, title))):
        try:
            make()
        except Exception as err:  # noqa: BLE001 - visuals are extras
            print(f"rbench: warning: {what} not written ({type(err).__name__}: {err})", file=sys.stderr, flush=True)


def span_line(metrics: dict[str, float], n_chunks: int, budget: int) -> str:
    if "evidence_split_rate" not in metrics:
        return ""
    line = (f"\nchunks: {n_chunks} (mean {metrics['chunk_tokens_mean']:.0f} tokens); gold spans split by chunking: "
            f"{metrics['evidence_split_rate']:.1%}")
    if "span_recall_at_budget" in metrics:
        line += f"; span recall within {budget} tokens: {metrics['span_recall_at_budget']:.4f}"
    return line


def keep_unlogged(folder: Path, home: Path, fingerprint: str, metrics: dict[str, float]) -> Path | None:
    """The tracking store failed while this run logged: keep what was computed (the run's artifacts and its
    metrics) under ``<home>/results/unlogged/<time>-<fingerprint>/`` and say where, so no work is lost."""
    import shutil
    import sys

    target = home / "results" / "unlogged" / f"{time.strftime('%Y%m%d-%H%M%S')}-{fingerprint[:12]}"
    try:
        shutil.copytree(folder, target)
        (target / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    except OSError as err:
        print(f"rbench: the tracking store failed while logging this run, and its results could not be kept either "
              f"({err.strerror or err}: {target})", file=sys.stderr, flush=True)
        return None
    print(f"rbench: the tracking store failed while logging this run; its results (run.trec, per_query.csv, "
          f"metrics.json, ...) are kept in {target}", file=sys.stderr, flush=True)
    return target


@dataclass
class RunResult:
    """What one experiment point produced. ``objective`` is what ``rbench`` returns to Hydra's sweepers
    (nDCG@10, else the first metric). A point skipped because it already has a FINISHED run carries that
    run's id and metrics, and ``skipped=True`` (nothing else was computed)."""

    run_id: str
    metrics: dict[str, float]
    skipped: bool = False
    dataset: Dataset | None = None
    evaluation: Evaluation | None = None
    run: dict[str, dict[str, float]] = field(default_factory=dict)  # the document run of the evaluated split
    audit_rows: list[dict[str, Any]] = field(default_factory=list)
    by_label: dict[str, dict[str, float]] = field(default_factory=dict)  # :func:`breakdown`; a skipped point's: {}

    @property
    def objective(self) -> float:
        if "ndcg_at_10" in self.metrics:
            return float(self.metrics["ndcg_at_10"])
        if self.evaluation is not None and self.evaluation.mean:
            return float(next(iter(self.evaluation.mean.values())))
        return 0.0


def run_experiment(cfg: Any, choices: dict[str, str] | None = None) -> RunResult:
    """The body of ``rbench``: one point, validated, run, evaluated and logged. ``choices``: the option of
    each config group, when ``cfg`` was composed outside Hydra's main job."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf



    validate(cfg)  # every key, type, range and option, before anything is loaded or logged
    resolved = OmegaConf.to_container(cfg, resolve=True)
    ks = sorted({int(k) for k in cfg.metrics.k})
    top_k = int(cfg.top_k)
    # build components first: a wrong config fails before any data is read or run is logged
    loader = instantiate(cfg.dataset)
    chunker = instantiate(cfg.chunker)

    pipeline = build_pipeline(cfg, aggregate=getattr(chunker, "aggregate", "max"))

    check_reachable(str(cfg.tracking.uri))  # a down server fails here, in seconds, before any data is read
    check_store(str(cfg.tracking.uri), cfg.tracking.get("artifact_root"))  # not SQLite, unwritable: before any work
    if cfg.get("cache", {}).get("mode", "use") != "off":
        why = unwritable(str(cfg.cache.dir))
        if why:
            raise ConfigError(f"cache.dir: {cfg.cache.dir} cannot be written: {why} (cache.mode=off runs without a "
                              "cache) -- nothing was computed")
    limits.configure(resolved.get("limits"))  # bounded reading of every input file (benchmarks.datasets.limits)
    tracker = tracker_for(uri=cfg.tracking.uri, experiment=cfg.tracking.experiment,
                          artifact_root=cfg.tracking.get("artifact_root"), run_name=cfg.tracking.get("run_name"))
    # the point's identity (config fingerprint) needs the dataset's content hash: load it first. Bad data (a
    # DataError naming the file and line) stops here, before a run exists, so the experiment holds no FAILED run
    # for it; any other failure while loading is raised inside the run below and logged as a FAILED run
    dataset_name = loader.dataset_name()  # set once, known before loading
    t0 = time.perf_counter()
    load_error: Exception | None = None
    try:
        dataset = load_dataset(loader, resolved["dataset"])
    except (RbenchError, RetrieverError):
        raise
    except Exception as err:  # noqa: BLE001 - re-raised inside the tracked run
        load_error = err
    load_s = time.perf_counter() - t0
    identity: dict[str, str] = {"dataset": dataset_name}
    if load_error is None:
        ds_fp = dataset.fingerprint()
        cfg_fp = provenance.config_fingerprint(resolved, ds_fp)
        identity = {"dataset_fingerprint": ds_fp, "config_fingerprint": cfg_fp, "dataset": dataset_name,
                    "split": dataset.split}
        tracker.reap_dead(cfg_fp)
        done = None if cfg.get("rerun", False) else tracker.finished_run(cfg_fp)
        if done is not None:  # resumable sweeps: this point already has a FINISHED run
            stored = layout.contract_metrics(done.metrics)
            print("\n".join([f"rbench: skipped — experiment '{cfg.tracking.experiment}' already has FINISHED run "
                              f"{done.run_id} for this point (config fingerprint {cfg_fp[:12]}); rerun=true runs it "
                              f"again. Its stored results:",
                              f"{dataset.name} [{dataset.split}]: {int(stored.get('queries_scored', 0))} queries scored",
                              *metric_table(stored, ks)]), flush=True)
            return RunResult(done.run_id, stored, skipped=True)
    choices = choices if choices is not None else group_choices(cfg)

    varied = varied_settings(GROUPS)
    route_text = routes(resolved)  # a routed run's routes: in its tags, description, plots and report rows
    pipeline_text = describe(choices) + (f" (routes: {route_text})" if route_text else "")
    heads = layout.headline(ks, cfg.metrics.get("headline_k"))
    params = {**flatten(resolved), **choices}
    tracker.run_name = run_name(cfg.tracking.get("run_name"), choices, dataset_name, values=flatten(resolved),
                                varied=varied)
    with tracker:
        tracker.start({"git_commit": provenance.git_commit(), "code_version": provenance.code_version(),
                       "versions": json.dumps(provenance.package_versions(), sort_keys=True),
                       "components": layout.components(params), **({"routes": route_text} if route_text else {}),
                       **identity})
        tracker.log_params(layout.ordered_params(params))
        if load_error is None:
            tracker.log_dataset(f"{dataset.name} [{dataset.split}]", ds_fp, dataset.source or dataset.name,
                                num_documents=len(dataset.corpus), num_queries=len(dataset.queries))
        if load_error is not None:
            raise load_error
        result = retrieve(dataset, chunker, pipeline, top_k=top_k)
        ev = evaluate(dataset.qrels, result.run, ks)
        tune_ev = evaluate(dataset.tune_qrels, result.tune_run, ks) if dataset.tune_queries else None

        budget = int(cfg.metrics.get("budget", 512))
        context = BudgetContext(result.chunks, budget)  # token counts shared by the evidence metrics and the audit
        sets = stale_sets(dataset.queries, dataset.qrels, dataset.corpus)  # version queries: metrics and by label
        metrics = collect_metrics(dataset, result, ev, tune_ev, ks, budget=budget, context=context, sets=sets)
        metrics["time_load_s"] = load_s

        with tempfile.TemporaryDirectory(prefix="rbench-artifacts-") as tmp, \
                writing(tmp, "the run's artifacts (a temporary folder)"):
            folder = Path(tmp)
            write_artifacts(folder, dataset, result, ev, tune_ev, ks, tag=str(cfg.retriever.get("_target_", "rbench")).rsplit(".", 1)[-1])
            records = result.ranking.records
            if records:  # decomposer / router: per query sub-queries, route, calls
                write_jsonl(folder / "decomposition.jsonl", records.values())

            rows = audit_rows(dataset.queries, dataset.qrels, result.run, result.chunk_run, result.chunks, records, k=10,
                              context=context)
            write_jsonl(folder / "audit.jsonl", rows)
            by_label = breakdown(dataset.queries, ev, rows=rows, run=result.run, sets=sets)
            if cfg.tracking.get("visuals", True):
                write_visuals(folder, metrics, by_label, ks, rows, result, dataset,
                              f"{pipeline_text} on {dataset.name} [{dataset.split}]")

            (folder / "config.yaml").write_text(OmegaConf.to_yaml(redact_config(resolved)), encoding="utf-8")
            (folder / "summary.json").write_text(json.dumps(
                {"metrics": metrics, "by_label": by_label, "notes": dataset.notes, "skipped_queries": ev.skipped,
                 "dataset_fingerprint": ds_fp, "config_fingerprint": cfg_fp}, indent=2), encoding="utf-8")
            try:
                heads += layout.failure_heads(metrics)  # span recall, stale hits, split evidence: beside the headline
                tracker.log_metrics(layout.logged_metrics(metrics, heads))
                tracker.set_tags({"mlflow.note.content": layout.description(
                    pipeline=pipeline_text, dataset=dataset.name, split=dataset.split, queries=ev.n_scored,
                    documents=len(dataset.corpus), metrics=metrics, heads=heads, varied=varied, fingerprint=cfg_fp)})
                columns = [g for g in layout.STAGES if g in choices] + [v.split("=", 1)[0] for v in varied]
                tracker.set_view(functools.partial(layout.view_state, heads, columns))
                tracker.log_artifacts(folder)  # only now: a failed run leaves no partial artifacts
                tracker.flush()  # the store has it all before the folder goes (a helper logs while the run computes)
            except Exception as err:

                kept = keep_unlogged(folder, Path(str(cfg.get("home", "."))), cfg_fp, metrics)
                if out_of_space(err) or kept is None:
                    raise
                raise TrackingError(f"the tracking store {redact_text(str(cfg.tracking.uri))} failed while logging the "
                                    f"run ({type(err).__name__}: {redact_text(str(err))[:300]}); the run is marked "
                                    f"FAILED and its results are kept in {kept}") from err
        shown = ("chunker", "router", "versions", "reranker") if choices.get("router", "none") != "none" else \
            ("chunker", "retriever", *DEFAULT_PIPELINE)
        what = " + ".join(f"{g}={choices[g]}" for g in shown if g in choices)
        calls = f"; {metrics['retrieval_calls_mean']:.2f} retrieval calls per query" if "retrieval_calls_mean" in metrics else ""
        print_summary(dataset, ev, ks, f"rbench: {what} on {dataset.name}{calls}", by_label,
                      f"{span_line(metrics, len(result.chunks), cfg.metrics.get('budget', 512))}\nMLflow run "
                      f"{tracker.run_id} (experiment '{cfg.tracking.experiment}', {cfg.tracking.uri})\n" +
                      "\n".join(layout.print_urls(str(cfg.tracking.uri), tracker.experiment_id(), tracker.run_id)))
    return RunResult(tracker.run_id, metrics, dataset=dataset, evaluation=ev, run=result.run, audit_rows=rows,
                     by_label=by_label)
