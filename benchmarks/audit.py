"""The retrieval audit: what the retrieval layer returned before a model saw it, and why a query failed.

Every run logs ``audit.jsonl`` (:func:`benchmarks.audit_log.audit_rows`): per query its text, route and sub-queries, the top-k
chunks (document, span, score, rank, gold flag) and whether the gold evidence is in the context at all —
at document level, and at span level where gold spans exist (within ``metrics.budget`` tokens).

``rbench-audit --run-id ID`` (or ``--experiment E [--filter key=value]``) re-reads a run, rebuilds its
dataset and chunks from the logged config, and gives each *failed* query (a gold document missing from
the top k, a gold span missing from the context, or a superseded version ranked above its current one)
one verdict, with the evidence for it, checked in this order:

1. ``stale_version`` — a superseded document (corpus metadata ``superseded_by``) ranks above the current
   version of a gold document, or is in the top k while the current one is not;
2. ``chunk_boundary`` — a gold document is in the top k but a gold span of it is split across chunks
   (no single chunk contains it whole);
3. ``multi_hop`` — some but not all gold documents are in the top k;
4. ``exact_term`` — a BM25 run finds a gold document in the top k that a dense run misses (the companion
   runs are computed with the run's chunker, from the cache where possible);
5. ``routing`` — (router runs) another route ranks this query's gold documents better (nDCG@k);
6. ``other``.

The verdicts never read the dataset's failure-mode labels: the dataset is rebuilt with ``label`` removed
from every query, and labels (from the run's ``per_query.csv``) are only joined afterwards to score the
audit (confusion table, agreement rate).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from chunkers.types import Chunk, Query
from retrievers.types import Run
from retrievers.base import canonical_run, top_k_of
from benchmarks.datasets.enterprise import LABELS  # the failure-mode vocabulary, defined once
from benchmarks.validate import arg_type, integer, number

VERDICTS = ("chunk_boundary", "exact_term", "multi_hop", "stale_version", "routing", "other")
STRIPPED = ("label",)  # query metadata the audit must not see


# ------------------------------------------------------------------------------------------ verdicts
def successors(corpus_meta: Mapping[str, Mapping[str, Any]], doc: str) -> list[str]:
    out, seen = [], {doc}
    nxt = corpus_meta.get(doc, {}).get("superseded_by")
    while nxt and nxt not in seen:
        out.append(str(nxt))
        seen.add(str(nxt))
        nxt = corpus_meta.get(str(nxt), {}).get("superseded_by")
    return out


def stale_evidence(ranking: Sequence[str], gold: set[str], corpus_meta: Mapping[str, Mapping[str, Any]], k: int) -> str | None:
    """Why a superseded version outranks the current one (None if none does); from corpus metadata only."""
    pos = {d: i for i, d in enumerate(ranking)}
    for i, d in enumerate(ranking[:k]):
        current = [s for s in successors(corpus_meta, d) if s in gold]
        if not current:
            continue
        cur = current[-1]
        if cur not in pos or pos[cur] > i:
            where = f"rank {pos[cur] + 1}" if cur in pos else "not retrieved"
            return f"superseded {d} at rank {i + 1}; its current version {cur} is {where}"
    return None


def ndcg_at(ranking: Sequence[str], gold: set[str], k: int) -> float:
    import math

    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranking[:k]) if d in gold)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal if ideal else 0.0


def classify(row: Mapping[str, Any], ranking: Sequence[str], corpus_meta: Mapping[str, Mapping[str, Any]], *,
             bm25: Sequence[str] | None = None, dense: Sequence[str] | None = None,
             route_rankings: Mapping[str, Sequence[str]] | None = None) -> tuple[str, str] | None:
    """(verdict, evidence) for a failed query; None when the query did not fail."""
    k = int(row["k"])
    gold = set(row["gold_docs"])
    top = list(ranking[:k])
    found = gold & set(top)
    stale = stale_evidence(ranking, gold, corpus_meta, k)
    span_fail = row.get("span_level_ok") is False
    if found == gold and not span_fail and stale is None:
        return None
    if stale is not None:
        return "stale_version", stale
    split = [s for s in row.get("spans", []) if s["split"] and s["doc_id"] in found]
    if split:
        s = split[0]
        return "chunk_boundary", (f"gold document {s['doc_id']} is at rank {top.index(s['doc_id']) + 1} but its evidence "
                                  f"span [{s['start']}:{s['end']}] is split across chunks")
    if found and found != gold:
        return "multi_hop", f"found {len(found)} of {len(gold)} gold documents in the top {k}; missing {sorted(gold - found)}"
    missed = gold - found
    if bm25 is not None and dense is not None and missed:
        b, d = missed & set(bm25[:k]), missed & set(dense[:k])
        if b - d:
            return "exact_term", f"missed {sorted(b - d)}: BM25 puts it in the top {k}, dense does not"
    if route_rankings and row.get("route") in route_rankings:
        taken = ndcg_at(route_rankings[row["route"]], gold, k)
        best = max(route_rankings, key=lambda r: ndcg_at(route_rankings[r], gold, k))
        best_score = ndcg_at(route_rankings[best], gold, k)
        if best != row["route"] and best_score > taken:
            return "routing", f"routed to {row['route']} (nDCG@{k} {taken:.3f}); {best} scores {best_score:.3f}"
    if found == gold and span_fail:
        return "other", "gold documents retrieved, spans whole, but the span's chunk is outside the context budget"
    return "other", f"{len(gold - found)} gold document(s) missing from the top {k}; no cause above applies"


# ------------------------------------------------------------------------------------------ companions
def _find(node: Any, suffix: str) -> Any:
    """First config node (depth-first) whose ``_target_`` ends with ``suffix``."""
    from omegaconf import DictConfig

    if isinstance(node, DictConfig):
        if str(node.get("_target_", "")).endswith(suffix):
            return node
        for key in node:
            found = _find(node[key], suffix)
            if found is not None:
                return found
    return None


def companion_runs(cfg: Any, dataset: Any, chunks: Sequence[Chunk], top_k: int) -> dict[str, Run]:
    """Document-level BM25 and dense runs with the run's chunker (settings from the run's own config where it
    has such a retriever, else the defaults), and per-route runs for router runs; every one is a pipeline
    from the same builder as the run's."""
    from omegaconf import OmegaConf

    from retrievers.pipeline import build_pipeline

    out: dict[str, Run] = {}
    from benchmarks.paths import CONF_DIR

    conf = CONF_DIR / "retriever"
    aggregate = cfg.get("chunker", {}).get("aggregate", "max")
    for name, suffix in (("bm25", "BM25Retriever"), ("dense", "DenseRetriever")):
        node = _find(cfg, suffix)
        if node is None:  # the run has no such retriever: the defaults, with the run's cache
            node = OmegaConf.merge(OmegaConf.load(conf / f"{name}.yaml"),
                                   {"cache_dir": cfg.cache.dir, "cache_mode": cfg.cache.mode})
        stage = build_pipeline(OmegaConf.create({"retriever": node}), aggregate=aggregate, groups=())
        stage.index(chunks)
        out[name] = stage.rank(dataset.queries, top_k=top_k).run
    router = cfg.get("router")
    if router is not None and router.get("_target_"):
        for route in router.routes:
            forced = OmegaConf.merge(cfg, {"router": {"rules": {"force": str(route)}}})
            stage = build_pipeline(forced, aggregate=aggregate)  # the run's pipeline with the route forced
            stage.index(chunks)
            out[f"route:{route}"] = canonical_run(stage.rank(dataset.queries, top_k=top_k).run, top_k)
    return out


def run_audit(rows: Sequence[Mapping[str, Any]], run: Run, corpus_meta: Mapping[str, Mapping[str, Any]],
              companions: Mapping[str, Run]) -> list[dict[str, Any]]:
    """One record per failed query: query id, verdict, evidence."""
    out = []
    for row in rows:
        qid = row["query_id"]
        ranking = list(top_k_of(run.get(qid, {})))
        routes = {n.split(":", 1)[1]: list(top_k_of(r.get(qid, {}))) for n, r in companions.items() if n.startswith("route:")}
        bm25 = list(top_k_of(companions["bm25"].get(qid, {}))) if "bm25" in companions else None
        dense = list(top_k_of(companions["dense"].get(qid, {}))) if "dense" in companions else None
        verdict = classify(row, ranking, corpus_meta, bm25=bm25, dense=dense, route_rankings=routes or None)
        if verdict is not None:
            out.append({"query_id": qid, "verdict": verdict[0], "evidence": verdict[1]})
    return out


def run_signals(rows: Sequence[Mapping[str, Any]], chunks: Sequence[Chunk], corpus: Any,
                companions: Mapping[str, Run]) -> dict[str, list[dict[str, str]]]:
    """The label-free signals (:mod:`benchmarks.signals`) of every audited query, judged or not."""
    from benchmarks.signals import query_signals

    by_id = {c.id: c for c in chunks}
    out: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        qid, k = row["query_id"], int(row["k"])
        ctx = [by_id[h["chunk_id"]] for h in row.get("chunks") or [] if h.get("chunk_id") in by_id] or None
        bm25 = list(top_k_of(companions["bm25"].get(qid, {}))) if "bm25" in companions else None
        dense = list(top_k_of(companions["dense"].get(qid, {}))) if "dense" in companions else None
        out[qid] = query_signals(row["query"], [h["doc_id"] for h in row["docs"]], [h["score"] for h in row["docs"]],
                                 corpus, k=k, context_chunks=ctx, bm25=bm25, dense=dense)
    return out


def strip_labels(dataset: Any) -> Any:
    def clean(qs: Sequence[Query]) -> list[Query]:
        return [Query(q.id, q.text, {k: v for k, v in q.metadata.items() if k not in STRIPPED}) for q in qs]

    return replace(dataset, queries=clean(dataset.queries), tune_queries=clean(dataset.tune_queries), _fingerprint=None)


# ------------------------------------------------------------------------------------------ scoring
def confusion(verdicts: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> dict[str, Counter]:
    table: dict[str, Counter] = {lab: Counter() for lab in LABELS}
    for v in verdicts:
        lab = labels.get(v["query_id"])
        if lab:
            table.setdefault(lab, Counter())[v["verdict"]] += 1
    return table


def agreement(verdicts: Sequence[Mapping[str, Any]], labels: Mapping[str, str]) -> tuple[int, int]:
    """(verdicts equal to the label, labelled failures)."""
    scored = [v for v in verdicts if labels.get(v["query_id"])]
    return sum(v["verdict"] == labels[v["query_id"]] for v in scored), len(scored)


def summary_text(name: str, rows: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
                 labels: Mapping[str, str], signals: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
                 failed_what: str | None = None) -> str:
    counts = Counter(v["verdict"] for v in verdicts)
    judged = [r for r in rows if r.get("judged", True)]
    unjudged = len(rows) - len(judged)
    failed_what = failed_what or (f"a gold document outside the top {rows[0]['k'] if rows else '?'}, a gold span outside "
                                  "the context, or a superseded version first")
    lines = [f"## Retrieval audit: {name}", "",
             f"{len(judged)} judged queries, {len(verdicts)} failed ({failed_what})."
             + (f" {unjudged} unjudged queries get the label-free signals only." if unjudged else ""), "",
             "| verdict | failed queries |", "|---|---|"]
    lines += [f"| {v} | {counts.get(v, 0)} |" for v in VERDICTS]
    if any(labels.get(v["query_id"]) for v in verdicts):
        table = confusion(verdicts, labels)
        agree, n = agreement(verdicts, labels)
        lines += ["", f"Label (rows) vs audit verdict (columns), failed queries only. Labels were not read by "
                  f"the audit; agreement: {agree} of {n} ({agree / max(1, n):.0%}).", "",
                  "| label | " + " | ".join(VERDICTS) + " | failed |", "|---|" + "---|" * (len(VERDICTS) + 1)]
        for lab in LABELS:
            row = table.get(lab, Counter())
            lines.append(f"| {lab} | " + " | ".join(str(row.get(v, 0)) for v in VERDICTS) + f" | {sum(row.values())} |")
    if signals is not None:
        from benchmarks.signals import signal_table

        lines += [""] + signal_table(signals, len(rows))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ HTML
CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px}.sub{color:#5b6577;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #d8dde6;padding:4px 8px;text-align:right}
th{background:#eef1f6}td:first-child,th:first-child{text-align:left}.case{background:#fff;border:1px solid #d8dde6;
border-radius:8px;padding:12px 14px;margin:12px 0}.q{font-weight:600;font-size:14px}.v{display:inline-block;
border-radius:10px;padding:1px 9px;font-size:12px;color:#fff;margin-right:6px}.ev{font-size:13px;color:#39424e;margin:6px 0}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:14px}.col h3{font-size:13px;margin:4px 0;color:#5b6577}
.hit{font-size:12px;border-left:3px solid #c5ccd8;padding:3px 8px;margin:4px 0;background:#f6f8fb}
.hit.gold{border-color:#2e9d5b;background:#eef8f1}.miss{border-color:#c0392b;background:#fbefed}.t{color:#5b6577}"""
COLORS = {"chunk_boundary": "#8e44ad", "exact_term": "#d35400", "multi_hop": "#2471a3", "stale_version": "#b7950b",
          "routing": "#16a085", "other": "#7f8c8d"}


def html_report(title: str, rows: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
                labels: Mapping[str, str], docs: Mapping[str, Any], summary_md: str, *, per_verdict: int = 3,
                signals: Mapping[str, Sequence[Mapping[str, str]]] | None = None) -> str:
    """Self-contained HTML (inline CSS, no scripts or external assets). A retrieved item may carry its own
    ``text`` (a trace's passage) instead of pointing into ``docs``; a row may carry ``trace`` (reference,
    where the evidence was, which fix finds it)."""
    esc = html.escape
    by_q = {r["query_id"]: r for r in rows}

    def snippet(doc_id: str, start: int | None = None, end: int | None = None, n: int = 220, text: str | None = None) -> str:
        if text is None:
            d = docs.get(doc_id)
            if d is None:
                return ""
            text = d.text[start:end] if start is not None else d.text
        return esc(text[:n] + ("…" if len(text) > n else ""))

    def hit(h: Mapping[str, Any]) -> str:
        extra = f" [{h['start']}:{h['end']}]" if "start" in h else ""
        body = snippet(h["doc_id"], h.get("start"), h.get("end"), text=h.get("text"))
        title = esc(docs[h["doc_id"]].title) if h["doc_id"] in docs else ""
        score = f" · {h['score']:.3f}" if isinstance(h.get("score"), (int, float)) else ""
        return (f"<div class='hit{' gold' if h.get('gold') else ''}'><b>#{h['rank']}</b> {esc(h['doc_id'])}{extra} "
                f"<span class='t'>{title}{score}</span><br>{body}</div>")

    counts = Counter(v["verdict"] for v in verdicts)
    judged = sum(1 for r in rows if r.get("judged", True))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1><div class='sub'>{judged} judged queries · {len(verdicts)} failed · "
             + (f"{len(rows) - judged} unjudged (signals only) · " if len(rows) > judged else "")
             + "verdicts computed without the dataset's labels</div>", "<h2>Verdicts</h2><table><tr><th>verdict</th><th>failed</th></tr>"]
    parts += [f"<tr><td><span class='v' style='background:{COLORS[v]}'>{v}</span></td><td>{counts.get(v, 0)}</td></tr>" for v in VERDICTS]
    parts.append("</table>")
    if any(labels.get(v["query_id"]) for v in verdicts):
        table = confusion(verdicts, labels)
        agree, n = agreement(verdicts, labels)
        parts.append(f"<h2>Label vs verdict</h2><div class='sub'>agreement {agree} of {n} ({agree / max(1, n):.0%})</div>"
                     "<table><tr><th>label \\ verdict</th>" + "".join(f"<th>{v}</th>" for v in VERDICTS) + "</tr>")
        for lab in LABELS:
            row = table.get(lab, Counter())
            parts.append(f"<tr><td>{lab}</td>" + "".join(
                f"<td style='{'font-weight:700;background:#eef8f1' if v == lab and row.get(v) else ''}'>{row.get(v, 0)}</td>"
                for v in VERDICTS) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Worst examples</h2>")
    for verdict in VERDICTS:
        cases = [v for v in verdicts if v["verdict"] == verdict]
        # worst first: fewest gold documents found, then the lowest-ranked gold
        cases.sort(key=lambda v: (len(by_q[v["query_id"]]["gold_in_top_k"]), v["query_id"]))
        for v in cases[:per_verdict]:
            row = by_q[v["query_id"]]
            gold = set(row["gold_docs"])
            lab = labels.get(v["query_id"])
            parts.append(f"<div class='case'><div><span class='v' style='background:{COLORS[verdict]}'>{verdict}</span>"
                         f"<span class='q'>{esc(row['query'])}</span>"
                         + (f" <span class='t'>(label: {esc(lab)})</span>" if lab else "")
                         + (f" <span class='t'>route: {esc(row['route'])}</span>" if row.get("route") else "")
                         + f"</div><div class='ev'>{esc(v['evidence'])}</div><div class='cols'><div class='col'><h3>Retrieved (top 5)</h3>")
            items = row.get("chunks") or row["docs"]
            parts += [hit(h) for h in items[:5]]
            parts.append("</div><div class='col'><h3>Missed</h3>")
            trace = row.get("trace")
            if trace:
                for piece in trace["reference"]:
                    parts.append(f"<div class='hit miss'><b>reference</b> <span class='t'>not in the context</span><br>{esc(piece[:300])}</div>")
                for key in ("where", "fix"):
                    if trace.get(key):
                        parts.append(f"<div class='hit'><b>{key}</b><br>{esc(trace[key])}</div>")
            missing = sorted(gold - set(row["gold_in_top_k"]))
            for d in missing:
                parts.append(f"<div class='hit miss'><b>{esc(d)}</b> <span class='t'>gold document not in the top {row['k']}</span><br>{snippet(d)}</div>")
            for s in row.get("spans", []):
                if not s["in_context"]:
                    why = "split across chunks" if s["split"] else "outside the context budget"
                    parts.append(f"<div class='hit miss'><b>{esc(s['doc_id'])} [{s['start']}:{s['end']}]</b> <span class='t'>gold span "
                                 f"{why}</span><br>{snippet(s['doc_id'], s['start'], s['end'])}</div>")
            if not trace and not missing and not any(not s["in_context"] for s in row.get("spans", [])):
                parts.append("<div class='hit'>all gold evidence retrieved; see the verdict</div>")
            parts.append("</div></div></div>")
    if signals is not None:
        from benchmarks.signals import DESCRIPTIONS, SIGNALS

        fired = Counter(name for sigs in signals.values() for name in {x["signal"] for x in sigs})
        parts.append(f"<h2>Label-free signals</h2><div class='sub'>computed for all {len(rows)} queries, judged or not</div>"
                     "<table><tr><th>signal</th><th>queries</th><th>what it means</th></tr>")
        parts += [f"<tr><td>{n}</td><td>{fired.get(n, 0)}</td><td style='text-align:left'>{esc(DESCRIPTIONS[n])}</td></tr>"
                  for n in SIGNALS]
        parts.append("</table>")
        for name in SIGNALS:
            shown = [(qid, x) for qid, sigs in signals.items() for x in sigs if x["signal"] == name][:per_verdict]
            for qid, x in shown:
                row = by_q.get(qid, {})
                parts.append(f"<div class='case'><div><span class='v' style='background:#34495e'>{name}</span>"
                             f"<span class='q'>{esc(row.get('query', qid))}</span></div><div class='ev'>{esc(x['evidence'])}</div>")
                parts += [hit(h) for h in (row.get("chunks") or row.get("docs") or [])[:3]]
                parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------ CLI
def _download(client: Any, run_id: str, name: str, folder: str) -> Path | None:
    from benchmarks.store import download_artifact

    try:
        return Path(download_artifact(client, run_id, name, folder))
    except Exception:
        return None


def project_targets() -> set[str]:
    """Every ``_target_`` the project's own config groups name (``conf/**/*.yaml``): the classes a run's
    stored config may ask the audit to build."""
    import re

    from benchmarks.paths import CONF_DIR as conf

    found: set[str] = set()
    for path in conf.rglob("*.yaml"):
        found.update(re.findall(r"^\s*_target_:\s*([\w.]+)\s*(?:#.*)?$", path.read_text(encoding="utf-8"), re.M))
    return found


def foreign_targets(node: Any, allowed: set[str], path: str = "") -> list[str]:
    """``key: target`` for every ``_target_`` in a config tree that is not one of ``allowed`` (and every
    ``_args_``, never read from a stored config)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "_target_" and value is not None and str(value) not in allowed:
                out.append(f"{here}: {value}")
            elif key == "_args_":
                out.append(f"{here}: positional arguments are never read from a stored config")
            else:
                out += foreign_targets(value, allowed, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out += foreign_targets(item, allowed, f"{path}[{i}]")
    return out


def check_stored_config(cfg: Any, run_id: str) -> None:
    """A run's ``config.yaml`` comes from an artifact store others may write to: refuse any ``_target_`` that
    is not one of the project's own classes before anything is instantiated from it."""
    from benchmarks.errors import ConfigError

    bad = foreign_targets(cfg, project_targets())
    if bad:
        raise ConfigError(f"run {run_id}'s config.yaml names classes that are not the project's own, so it is not "
                          f"rebuilt (an artifact store is not trusted to choose code): {'; '.join(bad[:5])}")


def audit_mlflow_run(client: Any, run_id: str, *, k: int | None = None,
                     dataset_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Re-read one run and audit it: rows, verdicts, labels (joined afterwards), documents."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from benchmarks.retrieval import chunk_dataset
    from benchmarks.trec import read_run

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = _download(client, run_id, "config.yaml", tmp)
        audit_path = _download(client, run_id, "audit.jsonl", tmp)
        run_path = _download(client, run_id, "run.trec", tmp)
        pq_path = _download(client, run_id, "per_query.csv", tmp)
        if cfg_path is None or audit_path is None or run_path is None:
            raise SystemExit(f"rbench-audit: run {run_id} lacks config.yaml / audit.jsonl / run.trec artifacts "
                             "(runs made before the audit existed cannot be audited; rerun them)")
        cfg = OmegaConf.load(cfg_path)
        check_stored_config(cfg, run_id)
        rows = [json.loads(line) for line in open(audit_path, encoding="utf-8")]
        run = read_run(run_path)
        labels = {}
        if pq_path is not None:
            with open(pq_path, encoding="utf-8") as fh:
                labels = {r["query_id"]: r["label"] for r in csv.DictReader(fh) if r.get("label") in LABELS}
    if k is not None:
        rows = [{**r, "k": k} for r in rows]
    if dataset_overrides:
        cfg = OmegaConf.merge(cfg, {"dataset": dict(dataset_overrides)})
    dataset = strip_labels(instantiate(cfg.dataset).load())
    chunks = chunk_dataset(dataset, instantiate(cfg.chunker))
    companions = companion_runs(cfg, dataset, chunks, int(cfg.top_k))
    meta = {d.id: dict(d.metadata) for d in dataset.corpus}
    verdicts = run_audit(rows, run, meta, companions)
    from benchmarks.signals import Corpus

    signals = run_signals(rows, chunks, Corpus.of(dataset.corpus), companions)
    return {"rows": rows, "verdicts": verdicts, "labels": labels, "docs": {d.id: d for d in dataset.corpus},
            "dataset": dataset.name, "config": cfg, "signals": signals}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rbench-audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--experiment", default=None, help="audit the latest FINISHED run of this experiment matching --filter")
    parser.add_argument("--filter", default=None, help='param filter, e.g. "retriever=dense,chunker=fixed_tokens"')
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<$RBENCH_HOME or .>/results/mlflow.db")
    parser.add_argument("--k", type=arg_type(int, integer(1)), default=None, help="top-k for the verdicts (default: the run's, 10)")
    parser.add_argument("--out", default=None, help="write <out>.md, <out>.csv and the self-contained <out>.html")
    parser.add_argument("--examples", type=arg_type(int, integer(0)), default=3, help="worst examples per verdict in the HTML report")
    traces = parser.add_argument_group("production traces (no MLflow run needed)")
    traces.add_argument("--traces", default=None, metavar="FILE",
                        help="audit your own system's logged retrievals: JSON lines of {query, contexts: [{id, text, "
                             "doc_id?, score?, rank?}], reference?, answer?, feedback?}, or OpenInference retriever spans")
    traces.add_argument("--corpus", default=None, metavar="DIR",
                        help="with --traces: the documents folder (or BEIR folder) the system retrieves from; locates "
                             "the evidence and reruns BM25, dense and versions=filter over it")
    traces.add_argument("--recall-threshold", type=arg_type(float, number(0, 1, open_lo=True)), default=None,
                        help="with --traces: content-word recall at which a reference counts as reached (default 0.8)")
    return parser


def traces_main(args: argparse.Namespace) -> int:
    from benchmarks.errors import RbenchError
    from benchmarks.traces import FAILED_WHAT, RECALL_THRESHOLD, audit_traces
    from retrievers.errors import RetrieverError

    threshold = RECALL_THRESHOLD if args.recall_threshold is None else args.recall_threshold
    if not 0 < threshold <= 1:
        print(f"rbench-audit: error: --recall-threshold must be in (0, 1], got {threshold}", file=sys.stderr)
        return 2
    try:
        result = audit_traces(args.traces, corpus_dir=args.corpus, k=args.k or 10, threshold=threshold)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench-audit: error: {err}", file=sys.stderr)
        return 2
    rows = result["rows"]
    name = f"{Path(args.traces).name} ({result['n_traces']} traces" + (f", corpus {args.corpus})" if args.corpus else ")")
    how = (f"{FAILED_WHAT}: not contained in one passage, and under {threshold:g} of its content words in the "
           "passages together")
    text = summary_text(name, rows, result["verdicts"], {}, result["signals"], failed_what=how)
    reached = sum(1 for r in rows if r.get("reached"))
    judged = sum(1 for r in rows if r["judged"])
    text += (f"\nReference reached the context in {reached} of {judged} traces with a reference"
             + (f"; {result['skipped_spans']} spans without retrieval documents skipped" if result["skipped_spans"] else "")
             + ".\n")
    misses = [r for r in rows if "verdict" in r]
    if misses:
        text += "\n| line | trace | verdict | evidence | fix |\n|---|---|---|---|---|\n" + "".join(
            f"| {r['line']} | {r['query_id']} | {r['verdict']} | {r['evidence'].replace('|', '/')} | "
            f"{r['trace']['fix'].replace('|', '/')} |\n" for r in misses)
    print(text)
    if args.out:
        table = [{"line": r["line"], "query_id": r["query_id"], "reached": r["reached"], "verdict": r.get("verdict", ""),
                  "evidence": r.get("evidence", ""), "where": r.get("trace", {}).get("where", ""),
                  "fix": r.get("trace", {}).get("fix", "")} for r in rows]
        write_outputs(Path(args.out), text, ["line", "query_id", "reached", "verdict", "evidence", "where", "fix"], table,
                      result["signals"],
                      html_report(f"Trace audit — {name}", rows, result["verdicts"], {}, result["docs"], text,
                                  per_verdict=args.examples, signals=result["signals"]))
    return 0


def write_outputs(out: Path, text: str, fields: Sequence[str], table: Sequence[Mapping[str, Any]],
                  signals: Mapping[str, Any], page: str) -> None:
    """``<out>.md`` (the summary), ``<out>.csv`` (one row per verdict or trace), ``<out>.signals.csv`` and the
    self-contained ``<out>.html`` (each whole or not at all, secrets masked: ``retrievers.safe_write``)."""
    from retrievers.safe_write import write_text

    write_text(out.with_suffix(".md"), text, what="the audit")
    write_text(out.with_suffix(".csv"), _csv(fields, table), what="the audit")
    write_signals(out, signals)
    write_text(out.with_suffix(".html"), page, what="the audit")
    print(f"wrote {out}.md, {out}.csv, {out}.signals.csv and {out}.html", file=sys.stderr)


def _csv(fields: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_signals(out: Path, signals: Mapping[str, Sequence[Mapping[str, str]]]) -> None:
    from benchmarks.signals import as_rows
    from retrievers.safe_write import write_text

    write_text(out.with_suffix(".signals.csv"), _csv(["query_id", "signal", "evidence"], as_rows(signals)),
               what="the audit")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.traces:
        return traces_main(args)
    if args.corpus:
        print("rbench-audit: error: --corpus goes with --traces", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if args.tracking_uri is None:
        from benchmarks.paths import default_tracking_uri

        args.tracking_uri = default_tracking_uri()
    from mlflow.tracking import MlflowClient

    from benchmarks.store import ReportError, load_runs, matches, parse_filter
    from benchmarks.tracking import check_reachable, check_store

    check_reachable(args.tracking_uri, key="--tracking-uri", hint="--tracking-uri (or MLFLOW_TRACKING_URI)")
    check_store(args.tracking_uri, write=False, key="--tracking-uri")
    client = MlflowClient(tracking_uri=args.tracking_uri)
    run_id = args.run_id
    if run_id is None:
        if not args.experiment:
            print("rbench-audit: error: give --run-id or --experiment", file=sys.stderr)
            return 2
        try:
            _, records = load_runs(args.tracking_uri, args.experiment)
        except ReportError as err:
            print(f"rbench-audit: error: {err}", file=sys.stderr)
            return 2
        chosen = [r for r in records if matches(r, parse_filter(args.filter))]
        if not chosen:
            print(f"rbench-audit: error: no FINISHED run in {args.experiment!r} matches {args.filter!r}", file=sys.stderr)
            return 2
        run_id = chosen[-1].run_id
    try:
        client.get_run(run_id)
    except Exception as err:
        print(f"rbench-audit: error: no run {run_id} in {args.tracking_uri} ({type(err).__name__})", file=sys.stderr)
        return 2
    from benchmarks.errors import RbenchError
    from retrievers.errors import RetrieverError

    try:
        result = audit_mlflow_run(client, run_id, k=args.k)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench-audit: error: {err}", file=sys.stderr)
        return 2
    name = f"{result['dataset']} (run {run_id[:8]})"
    text = summary_text(name, result["rows"], result["verdicts"], result["labels"], result["signals"])
    print(text)
    if args.out:
        table = [{"query_id": v["query_id"], "label": result["labels"].get(v["query_id"], ""), "verdict": v["verdict"],
                  "evidence": v["evidence"]} for v in result["verdicts"]]
        write_outputs(Path(args.out), text, ["query_id", "label", "verdict", "evidence"], table, result["signals"],
                      html_report(f"Retrieval audit — {name}", result["rows"], result["verdicts"], result["labels"],
                                  result["docs"], text, per_verdict=args.examples, signals=result["signals"]))
    return 0
