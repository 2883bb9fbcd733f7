"""Auditing production traces: what your own RAG system retrieved, whether the answer was in it, and why not.

``rbench-audit --traces FILE [--corpus DIR]`` reads one logged query per line (``.jsonl``) or a JSON list:

* required: ``query`` and ``contexts``, a list of ``{id, text}`` with optional ``doc_id``, ``score``, ``rank``;
* optional: ``answer``, ``reference`` (a reference answer or evidence text, or a list of evidence texts),
  ``feedback``, ``_id``.

It also reads what tracing tools export, as they write it — OTLP JSON in both spellings, Phoenix's span
downloads and dataframes (JSON lines or parquet), OpenInference attributes flat or nested, LangSmith runs,
Langfuse observations, OpenLLMetry vector-DB spans (:mod:`benchmarks.diagnosis.trace_formats`): every
retriever span becomes a trace with its trace's answer and reference; other spans are counted by kind.

For each trace with a reference the audit decides whether the reference reached the context: a piece is
*reached* when its normalised text (case, punctuation and whitespace folded) is contained in one context,
or when the contexts together hold at least ``recall_threshold`` (default 0.8) of its content words
(stemmed, stopwords removed) and every number it contains (``EUR 150`` does not reach a ``EUR 180`` reference). A miss gets one cause from the verdict ladder runs use
(:mod:`benchmarks.diagnosis.verdicts`): ``stale_version``, ``chunk_boundary``, ``multi_hop``, ``exact_term``,
``wrong_passage``, ``other``. With ``--corpus`` the
corpus is read (a documents folder, as ``dataset=files``, or a BEIR folder), the reference is located in
it, and BM25, dense and version-aware (``versions=filter``) companions are run over it with
``chunker=sections`` to say where the evidence was and which fix would have found it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from chunkers.types import Chunk, Document
from benchmarks.datasets.base import read_csv_records, read_json_records
from benchmarks.datasets.beir import corpus_file, is_beir_folder, read_corpus
from benchmarks.datasets.files import locate, read_documents
from benchmarks.diagnosis.companions import Attribution, CorpusView, corpus_view
from benchmarks.diagnosis.matching import RECALL_THRESHOLD, Matcher, normalise
from benchmarks.diagnosis.records import Trace, reference_pieces
from benchmarks.diagnosis.signals import Corpus, not_computed, query_signals
from benchmarks.diagnosis.trace_formats import (EXPECTED, QUERY_KEYS, ReadReport, Span, answer_of, dataset_record, expand,
                                                query_of, read_parquet, spans_of, text_or_none)
from benchmarks.diagnosis.verdicts import suggest_fix, trace_cause, where_evidence
from benchmarks.errors import DataError

FAILED_WHAT = "its reference is not in the retrieved context"


# ------------------------------------------------------------------------------------------ reading
def _record(obj: Mapping[str, Any], where: int | str, path: Path) -> Trace:
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DataError("field 'query' must be a non-empty string"
                        + (" (fields present: " + ", ".join(sorted(obj)) + ")" if "query" not in obj else ""), path=path, line=where)
    contexts = obj.get("contexts")
    if not isinstance(contexts, list):
        raise DataError(f"field 'contexts' must be a list of {{id, text}} objects, got {type(contexts).__name__}",
                        path=path, line=where)
    out = []
    for i, ctx in enumerate(contexts):
        if not isinstance(ctx, dict) or not isinstance(ctx.get("text"), str):
            raise DataError(f"contexts[{i}] must be an object with a string 'text'", path=path, line=where)
        if ctx.get("id") in (None, ""):
            raise DataError(f"contexts[{i}] has no 'id'", path=path, line=where)
        score = ctx.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise DataError(f"contexts[{i}].score must be a number, got {score!r}", path=path, line=where)
        out.append({"id": str(ctx["id"]), "text": ctx["text"], "doc_id": str(ctx["doc_id"]) if ctx.get("doc_id") else None,
                    "score": score, "rank": ctx.get("rank", i + 1), "metadata": ctx.get("metadata") or {}})
    out.sort(key=lambda c: (c["rank"] if isinstance(c["rank"], (int, float)) else 1e9))
    pieces = reference_pieces(obj.get("reference"))
    if pieces is None:
        raise DataError("field 'reference' must be a string or a list of non-empty strings", path=path, line=where)
    tid = str(obj.get("_id") or obj.get("id") or (f"line-{where}" if isinstance(where, int) else str(where).replace(" ", "-")))
    return Trace(where, tid, query.strip(), out, pieces, obj.get("answer"), obj.get("feedback"))


def _dataset_trace(obj: Mapping[str, Any], where: int | str, path: Path) -> Trace | None:
    """A row of an evaluation dataset (Ragas, DeepEval) as a trace, or None for a record of another kind."""
    try:
        row = dataset_record(obj)
    except ValueError as err:
        raise DataError(str(err), path=path, line=where) from None
    if row is None:
        return None
    if not isinstance(row["query"], str) or not row["query"].strip():
        raise DataError(f"the question of a {row['layout']} row must be a non-empty string", path=path, line=where)
    tid = str(obj.get("_id") or obj.get("id") or (f"line-{where}" if isinstance(where, int) else str(where).replace(" ", "-")))
    contexts = [{"id": f"{tid}#{i}", "text": text, "doc_id": None, "score": None, "rank": i + 1, "metadata": {}}
                for i, text in enumerate(row["contexts"])]
    return Trace(where, tid, row["query"].strip(), contexts, row["reference"], row["answer"], source=row["layout"])


def _walk_records(path: Path) -> Iterator[tuple[int | str, Mapping[str, Any]]]:
    suffix = path.suffix.lower()
    records = (read_parquet(path) if suffix == ".parquet" else read_csv_records(path) if suffix == ".csv"
               else read_json_records(path))
    for where, obj in records:
        inner = expand(obj)
        if inner is None:
            yield where, obj
        else:
            for i, item in enumerate(inner, 1):
                yield (f"{where}, data {i}" if where else f"data {i}"), item


def _spans(obj: Mapping[str, Any], where: int | str, path: Path) -> list[Span] | None:
    try:
        found = spans_of(obj, where)
        return None if found is None else list(found)
    except ValueError as err:
        what = "OTLP export" if "must be a list of objects" in str(err) else "span attribute"
        raise DataError(f"{what}: {err}", path=path, line=getattr(err, "where", where)) from None


def _query_from_entity_input(value: Any) -> str | None:
    """Traceloop's ``traceloop.entity.input``: JSON of the call's ``{"args": [...], "kwargs": {...}}`` (or an input)."""
    obj = value
    if isinstance(value, str):
        try:
            obj = json.loads(value)
        except ValueError:
            return value.strip() or None
    if isinstance(obj, dict):
        for key in ("inputs", "kwargs"):
            got = query_of(obj.get(key)) if isinstance(obj.get(key), dict) else None
            if got:
                return got
        args = obj.get("args")
        if isinstance(args, list):
            return next((a for a in args if isinstance(a, str) and a.strip()), None)
        return query_of(obj)
    return None


def _query(span: Span, by_id: Mapping[str, Span]) -> str | None:
    """The span's query: its own (``input.value``, ``db.query.text``, a run's ``inputs.query``), else its nearest
    ancestor's input (``traceloop.entity.input``, ``input.value``)."""
    got = span.query or next((v for k in QUERY_KEYS if (v := text_or_none(span.attrs.get(k)))), None)
    if got:
        return got
    seen: set[str] = set()
    node = by_id.get(span.parent_id or "")
    while node is not None and node.span_id not in seen:
        seen.add(node.span_id or "")
        got = _query_from_entity_input(node.attrs.get("traceloop.entity.input")) or text_or_none(node.attrs.get("input.value"))
        if got:
            return got
        node = by_id.get(node.parent_id or "")
    return None


def traces_from_spans(spans: Sequence[Span], path: Path, report: ReadReport) -> list[Trace]:
    """The retriever spans as traces, each with its trace's answer (its last LLM span's) and reference (the
    retriever span's own, else the first span of the trace that carries one)."""
    by_trace: dict[str, list[Span]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id or f"span:{s.span_id or s.where}", []).append(s)
    by_id = {s.span_id: s for s in spans if s.span_id}
    out: list[Trace] = []
    for s in spans:
        if not s.is_retriever():
            report.skipped[s.kind] += 1
            continue
        found = s.docs()
        docs = [d for d in found if isinstance(d.get("content"), str)]
        s.dropped += len(found) - len(docs)  # an OpenInference document without document.content
        where = f"line {s.where}" if isinstance(s.where, int) else str(s.where)
        if not docs:
            report.skipped[f"{s.kind} without documents"] += 1
            report.problems.append(f"{where}: {s.why_no_documents()}")
            continue
        if s.dropped:
            report.dropped += s.dropped
            report.problems.append(f"{where}: {s.dropped} of its documents have no text (left out)")
        if s.cut():
            report.problems.append(f"{where}: retrieval.documents was cut off; its {len(docs)} complete documents read")
        report.retriever_spans += 1
        query = _query(s, by_id)
        if not query:
            raise DataError("retriever span without a query (no input.value, db.query.text, run inputs or an "
                            "ancestor's traceloop.entity.input)", path=path, line=s.where)
        contexts = []
        for rank, d in enumerate(docs, 1):
            score = d.get("score")
            contexts.append({"id": str(d["id"]) if d.get("id") not in (None, "") else f"{s.span_id or 'span'}#{rank - 1}",
                             "text": d["content"], "doc_id": str(d["id"]) if d.get("id") not in (None, "") else None,
                             "score": score if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
                             "rank": rank, "metadata": d.get("metadata") or {}})
        group = by_trace[s.trace_id or f"span:{s.span_id or s.where}"]
        reference = s.reference() or next((r for r in (x.reference() for x in group) if r), [])
        answers = [a for a in (answer_of(x) for x in group) if a]
        tid = s.span_id or (f"span-{s.where}" if isinstance(s.where, int) else str(s.where).replace(" ", "-"))
        out.append(Trace(s.where, tid, query.strip(), contexts, list(reference), answers[-1] if answers else None,
                         trace_id=s.trace_id, span_id=s.span_id, source=s.source))
    return out


def read_traces(path: str | Path) -> tuple[list[Trace], ReadReport]:
    """Every trace of a file (trace records, evaluation dataset rows, and the retriever spans of whatever
    tracing tool wrote it; see :mod:`benchmarks.diagnosis.trace_formats`) and a report of what was read."""
    path = Path(path)
    if not path.exists():
        raise DataError("traces file not found", path=path)
    return traces_of(_walk_records(path), path)


def traces_of(records: Iterable[tuple[int | str, Mapping[str, Any]]], path: Path) -> tuple[list[Trace], ReadReport]:
    """The traces of a stream of records (``path`` names where they came from, in errors)."""
    report = ReadReport()
    traces: list[Trace] = []
    spans: list[Span] = []
    for where, obj in records:
        report.records += 1
        row = _dataset_trace(obj, where, path)
        if row is not None:
            traces.append(row)
            report.formats[row.source] += 1
            continue
        if "query" in obj or "contexts" in obj:
            traces.append(_record(obj, where, path))
            report.formats["trace record"] += 1
            continue
        found = _spans(obj, where, path)
        if found is None:
            raise DataError(f"neither a trace (query, contexts) nor a span of a known format; fields: "
                            f"{', '.join(sorted(map(str, obj)))[:160]}; expected {EXPECTED}", path=path, line=where)
        for s in found:
            report.spans += 1
            report.formats[s.source] += 1
            report.keys.update({".".join(k.split(".")[:2]) for k in s.attrs})
        spans += found
    traces += traces_from_spans(spans, path, report)
    if not traces:
        seen = f"; attribute keys seen: {', '.join(k for k, _ in report.keys.most_common(12))}" if report.keys else ""
        raise DataError(f"no traces: {report.line()}{seen}; expected {EXPECTED}", path=path)
    seen: dict[str, int | str] = {}
    for t in traces:
        if t.id in seen:
            t.id = f"{t.id}@{t.where}"
        seen[t.id] = t.where
    return traces, report


def read_corpus_dir(path: str | Path) -> list[Document]:
    root = Path(path)
    if not root.is_dir():
        raise DataError("--corpus: not a folder", path=root)
    if is_beir_folder(root):
        return read_corpus(corpus_file(root))
    return read_documents(root)


# ------------------------------------------------------------------------------------------ verdicts
def judge(trace: Trace, matcher: Matcher, view: CorpusView | None, k: int) -> dict[str, Any]:
    """The audit row of one trace: contexts (each attributed to its corpus document, or said to be ambiguous or
    unmapped), whether each reference piece was reached, and for a miss the verdict, its evidence, where the
    evidence was and which fix finds it."""
    texts = [c["text"] for c in trace.contexts]
    attributed = ([view.attribute(c) for c in trace.contexts] if view is not None
                  else [Attribution(c.get("doc_id") or None, "recorded") for c in trace.contexts])
    ctx_docs = [a.doc for a in attributed]
    maybe = sorted({d for a in attributed for d in a.candidates})
    pieces = [(p, *matcher.reached(p, texts)) for p in trace.reference]
    gold: dict[str, list[str]] = {}  # piece -> documents holding it (the current version where versions share it)
    if view is not None:
        gold = {p: view.current_holders(view.locate(p, matcher)) for p in trace.reference}
    gold_docs = sorted({d for ds in gold.values() for d in ds})
    row: dict[str, Any] = {
        "query_id": trace.id, "query": trace.query, "judged": bool(trace.reference), "k": k, "line": trace.where,
        "gold_docs": gold_docs,
        "docs": [{"rank": i + 1, "doc_id": ctx_docs[i] or c["id"], "attributed": a.route, "candidates": list(a.candidates),
                  "score": c["score"], "gold": any(matcher.contained(p, c["text"]) for p in trace.reference),
                  "text": c["text"]}
                 for i, (c, a) in enumerate(zip(trace.contexts, attributed))],
        "gold_in_top_k": sorted(set(gold_docs) & {d for d in ctx_docs if d}),
        "maybe_in_top_k": sorted(set(gold_docs) & set(maybe)),
        "reached": all(ok for _, ok, _ in pieces) if pieces else None,
        "pieces": [{"reference": p, "reached": ok, "how": how} for p, ok, how in pieces],
    }
    if not pieces or row["reached"]:
        return row
    missed = [p for p, ok, _ in pieces if not ok]
    verdict, evidence = trace_cause(trace, missed, pieces, texts, ctx_docs, gold, view, k, maybe=maybe)
    row.update({"verdict": verdict, "evidence": evidence,
                "trace": {"reference": missed, "where": where_evidence(missed, gold, view, matcher), "fix": suggest_fix(verdict, trace, missed, gold, view, matcher, k)}})
    return row


# ------------------------------------------------------------------------------------------ the audit
def audit_traces(path: str | Path | None, *, corpus_dir: str | Path | None = None, k: int = 10,
                 threshold: float = RECALL_THRESHOLD, overrides: Sequence[str] = (),
                 references: str | Path | None = None, companions: Sequence[str] = ("bm25", "dense"),
                 read: tuple[list[Trace], ReadReport] | None = None) -> dict[str, Any]:
    """Read, judge and diagnose every trace: rows, verdicts, signals, documents (for the report).
    ``references``: a file of references joined to the traces (:func:`attach_references`); ``read``: traces
    already read (from an MLflow server: :func:`mlflow_records`) instead of ``path``."""
    traces, report = read if read is not None else read_traces(path)
    joined = attach_references(traces, references) if references else None
    matcher = Matcher(threshold)
    corpus = read_corpus_dir(corpus_dir) if corpus_dir else []
    view = corpus_view(corpus, traces, k=k, overrides=overrides, companions=companions) if corpus else None
    rows = [judge(t, matcher, view, k) for t in traces]
    verdicts = [{"query_id": r["query_id"], "verdict": r["verdict"], "evidence": r["evidence"], "line": r["line"]}
                for r in rows if "verdict" in r]
    sig_corpus = Corpus.of(corpus)
    signals = {}
    for t, r in zip(traces, rows):
        chunks = None
        if view is not None:

            chunks = []
            for h, c in zip(r["docs"], t.contexts):
                if h["doc_id"] in view.docs:
                    at = locate(view.docs[h["doc_id"]].text, c["text"])
                    if at:
                        chunks.append(Chunk(c["id"], h["doc_id"], "", view.docs[h["doc_id"]].text[at[0]:at[1]], at[0], at[1]))
        scores = [c["score"] for c in t.contexts]
        signals[t.id] = query_signals(
            t.query, [h["doc_id"] for h in r["docs"]], scores if all(isinstance(s, (int, float)) for s in scores) else [],
            sig_corpus, k=k, context_chunks=chunks or None, context_texts=[c["text"] for c in t.contexts],
            bm25=view.companions["bm25"].get(t.id) if view and "bm25" in view.companions else None,
            dense=view.companions["dense"].get(t.id) if view and "dense" in view.companions else None,
            answer=t.answer if isinstance(t.answer, str) else None)
    scored = any(len(t.contexts) >= 2 and all(isinstance(c["score"], (int, float)) for c in t.contexts) for t in traces)
    both = view is not None and {"bm25", "dense"} <= set(view.companions)
    skipped_signals = not_computed(corpus=view is not None, companions=both, scores=scored,
                                   answers=any(isinstance(t.answer, str) and t.answer.strip() for t in traces))
    attribution = Counter(h["attributed"] for r in rows for h in r["docs"]) if view is not None else Counter()
    return {"rows": rows, "verdicts": verdicts, "signals": signals, "read": report, "references": joined,
            "attribution": attribution, "view": view,
            "not_computed": skipped_signals, "docs": {d.id: d for d in corpus}, "threshold": threshold,
            "n_traces": len(traces)}


# ------------------------------------------------------------------------------------------ references
def read_references(path: str | Path) -> list[dict[str, Any]]:
    """``--references FILE`` (``.jsonl``, ``.json`` or ``.csv``): one reference per record, ``reference`` (a string,
    or a list of evidence strings; in a CSV one string) and at least one of ``span_id``, ``trace_id``, ``query``
    to join it on."""
    path = Path(path)
    if not path.exists():
        raise DataError("references file not found", path=path)
    records = list(read_csv_records(path) if path.suffix.lower() == ".csv" else read_json_records(path))
    out = []
    for where, obj in records:
        pieces = reference_pieces(obj.get("reference", obj.get("expected_output")))
        if not pieces:
            raise DataError("field 'reference' must be a non-empty string or a list of non-empty strings",
                            path=path, line=where)
        keys = {k: str(obj[k]).strip() for k in ("span_id", "trace_id", "query") if obj.get(k) not in (None, "")}
        if not keys:
            raise DataError("a reference needs span_id, trace_id or query to be joined to a trace "
                            f"(fields present: {', '.join(sorted(obj))})", path=path, line=where)
        out.append({"where": where, "reference": pieces, **keys})
    return out


def attach_references(traces: Sequence[Trace], path: str | Path) -> dict[str, int]:
    """Give each trace the reference of ``path`` that names its span id, else its trace id, else its query text
    (normalised); a trace's own reference is replaced. Returns counts: references read, traces given one,
    references that matched no trace."""
    refs = read_references(path)
    by = {key: {} for key in ("span_id", "trace_id", "query")}
    for r in refs:
        for key in by:
            if key in r:
                by[key].setdefault(normalise(r[key]) if key == "query" else r[key], r)
    used: set[int] = set()
    given = 0
    for t in traces:
        hit = (by["span_id"].get(t.span_id or t.id) or (by["trace_id"].get(t.trace_id) if t.trace_id else None)
               or by["query"].get(normalise(t.query)))
        if hit is not None:
            t.reference = list(hit["reference"])
            used.add(id(hit))
            given += 1
    return {"references": len(refs), "traces_given": given, "unmatched": sum(1 for r in refs if id(r) not in used)}


# ------------------------------------------------------------------------------------------ a test set
def queries_from_audit(rows: Sequence[Mapping[str, Any]], view: CorpusView) -> tuple[list[dict[str, Any]], Counter]:
    """The audited traces that carry a reference as ``dataset=files`` queries: the query text, the documents
    holding the reference as ``relevant`` (the current version where versions share it) and each reference piece
    found verbatim in one of them as ``evidence``. Also counts: written, and why each other trace was left out."""
    out: list[dict[str, Any]] = []
    counts: Counter = Counter()
    seen: set[str] = set()
    for r in rows:
        if not r["judged"]:
            counts["no reference"] += 1
            continue
        relevant = list(r["gold_docs"])
        if not relevant:
            counts["reference in no corpus document"] += 1
            continue
        pieces = [p["reference"] for p in r["pieces"]]
        evidence = [p for p in pieces if any(locate(view.docs[d].text, p) for d in relevant)]
        counts["evidence not verbatim (kept as relevant documents only)"] += len(pieces) - len(evidence)
        qid = str(r["query_id"])
        while qid in seen:
            qid += "'"
        seen.add(qid)
        out.append({"_id": qid, "text": r["query"], "relevant": relevant, **({"evidence": evidence} if evidence else {}),
                    "trace_line": r["line"]})
        counts["written"] += 1
    return out, counts


# ------------------------------------------------------------------------------------------ an MLflow server
def mlflow_records(uri: str, experiment: str, *, filter_string: str | None = None,
                   max_traces: int = 10_000, page_size: int = 100) -> Iterator[tuple[str, dict[str, Any]]]:
    """The traces of an MLflow experiment, read from a tracking server (or a local store) with
    ``MlflowClient.search_traces`` a page at a time, each as the JSON ``Trace.to_json()`` writes (so it is read by
    the same reader as an exported file), at most ``max_traces``. An unknown experiment is an error with the
    experiments the store has."""
    import difflib

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments(max_results=1000)]
        close = difflib.get_close_matches(experiment, names, n=1)
        raise DataError(f"--mlflow-experiment: no experiment {experiment!r} in the store"
                        + (f"; did you mean {close[0]!r}?" if close else f" (it has: {', '.join(names[:10]) or 'none'})"))
    token, n = None, 0
    while n < max_traces:
        try:
            page = client.search_traces(locations=[found.experiment_id], filter_string=filter_string,
                                        max_results=min(page_size, max_traces - n), page_token=token)
        except Exception as err:  # noqa: BLE001 - MLflow's own error: a bad filter, a server that refuses
            raise DataError(f"--mlflow-experiment {experiment!r}: MLflow could not search its traces "
                            f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})") from None
        for trace in page:
            n += 1
            yield f"trace {trace.info.trace_id}", json.loads(trace.to_json())
        token = page.token
        if not token or not len(page):
            break
