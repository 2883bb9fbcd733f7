"""Auditing production traces: what your own RAG system retrieved, whether the answer was in it, and why not.

``rbench-audit --traces FILE [--corpus DIR]`` reads one logged query per line (``.jsonl``) or a JSON list:

* required: ``query`` and ``contexts``, a list of ``{id, text}`` with optional ``doc_id``, ``score``, ``rank``;
* optional: ``answer``, ``reference`` (a reference answer or evidence text, or a list of evidence texts),
  ``feedback``, ``_id``.

It also reads retrieval spans exported in the OpenInference / OpenTelemetry convention: a span whose
attributes hold ``input.value`` and ``retrieval.documents.<i>.document.{id,content,score}`` — as flat keys,
nested objects, or OTLP ``{"key", "value": {"stringValue": ...}}`` lists, one span per line or an OTLP JSON
export (``resourceSpans``). Spans without retrieval documents (LLM, chain spans) are skipped and counted.

For each trace with a reference the audit decides whether the reference reached the context: a piece is
*reached* when its normalised text (case, punctuation and whitespace folded) is contained in one context,
or when the contexts together hold at least ``recall_threshold`` (default 0.8) of its content words
(stemmed, stopwords removed) and every number it contains (``EUR 150`` does not reach a ``EUR 180`` reference). A miss gets one cause, in the run audit's vocabulary and order:
``stale_version``, ``chunk_boundary``, ``multi_hop``, ``exact_term``, ``other``. With ``--corpus`` the
corpus is read (a documents folder, as ``dataset=files``, or a BEIR folder), the reference is located in
it, and BM25, dense and version-aware (``versions=filter``) companions are run over it with
``chunker=sections`` to say where the evidence was and which fix would have found it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from chunkers.types import Chunk, Document
from benchmarks.datasets.base import read_json_records
from benchmarks.datasets.files import locate
from benchmarks.diagnosis.companions import CorpusView, corpus_view
from benchmarks.diagnosis.matching import RECALL_THRESHOLD, Matcher
from benchmarks.diagnosis.records import Trace
from benchmarks.diagnosis.signals import Corpus, query_signals
from benchmarks.diagnosis.verdicts import suggest_fix, trace_cause, where_evidence
from benchmarks.errors import DataError
from benchmarks.datasets.base import data_file
from benchmarks.datasets.beir import read_corpus
from benchmarks.datasets.files import read_documents

FAILED_WHAT = "its reference is not in the retrieved context"
_DOC_KEY = re.compile(r"^retrieval\.documents\.(\d+)\.document\.(id|content|score|metadata)$")




# ------------------------------------------------------------------------------------------ reading
def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested attribute objects and lists as dotted keys (``retrieval.documents.0.document.id``)."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(node, list) and prefix.endswith("documents"):
        for i, v in enumerate(node):
            out.update(_flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = node
    return out


def _otlp_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as Python; ValueError for one that does not hold what its key says."""
    if isinstance(value, dict):
        for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
            if key in value:
                v = value[key]
                if key == "intValue":  # protobuf JSON writes 64-bit integers as strings
                    if isinstance(v, bool) or not isinstance(v, (int, str)) or not str(v).lstrip("-").isdigit():
                        raise ValueError(f"intValue {v!r} is not an integer")
                    return int(v)
                return v
        if "arrayValue" in value:
            arr = value["arrayValue"]
            values = arr.get("values", []) if isinstance(arr, dict) else None
            if not isinstance(values, list):
                raise ValueError("arrayValue must be an object with a list 'values'")
            return [_otlp_value(v) for v in values]
    return value


def span_attributes(span: Mapping[str, Any]) -> dict[str, Any]:
    attrs = span.get("attributes", span)
    if isinstance(attrs, list):  # OTLP: [{"key": ..., "value": {"stringValue": ...}}]
        attrs = {a.get("key"): _otlp_value(a.get("value")) for a in attrs if isinstance(a, dict)}
    return _flatten(attrs) if isinstance(attrs, dict) else {}


def trace_from_span(span: Mapping[str, Any], where: int | str, path: Path) -> Trace | None:
    """A retriever span as a trace; None for a span with no retrieval documents."""
    if not isinstance(span, Mapping):
        raise DataError(f"a span must be a JSON object, got {type(span).__name__}", path=path, line=where)
    try:
        attrs = span_attributes(span)
    except ValueError as err:
        raise DataError(f"span attribute: {err}", path=path, line=where) from None
    docs: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        m = _DOC_KEY.match(key)
        if m:
            docs.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not docs:
        return None
    query = attrs.get("input.value")
    if not isinstance(query, str) or not query.strip():
        raise DataError("retriever span without a string 'input.value' (the query)", path=path, line=where)
    contexts = []
    for rank, i in enumerate(sorted(docs), 1):
        d = docs[i]
        if not isinstance(d.get("content"), str):
            raise DataError(f"retrieval.documents.{i}.document.content is missing or not a string", path=path, line=where)
        contexts.append({"id": str(d.get("id", f"doc{i}")), "text": d["content"], "doc_id": str(d["id"]) if d.get("id") else None,
                         "score": d.get("score"), "rank": rank})
    sid = span.get("context", {}).get("span_id") if isinstance(span.get("context"), dict) else None
    sid = sid or span.get("spanId") or span.get("span_id")
    return Trace(where, str(sid or f"span-{where}"), query.strip(), contexts)


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
    ref = obj.get("reference")
    if ref is None or ref == "":
        pieces: list[str] = []
    elif isinstance(ref, str):
        pieces = [ref]
    elif isinstance(ref, list) and all(isinstance(x, str) and x.strip() for x in ref):
        pieces = list(ref)
    else:
        raise DataError("field 'reference' must be a string or a list of non-empty strings", path=path, line=where)
    tid = str(obj.get("_id") or obj.get("id") or (f"line-{where}" if isinstance(where, int) else str(where).replace(" ", "-")))
    return Trace(where, tid, query.strip(), out, pieces, obj.get("answer"), obj.get("feedback"))


def _list_of(node: Any, key: str, where: int | str, path: Path) -> list[Any]:
    """``node[key]`` of an OTLP export as a list of objects (absent or null: empty); anything else is an error."""
    if not isinstance(node, Mapping):
        raise DataError(f"OTLP export: expected an object holding {key!r}, got {type(node).__name__}", path=path, line=where)
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise DataError(f"OTLP export: {key!r} must be a list of objects, got "
                        f"{type(value).__name__ if not isinstance(value, list) else 'a list holding other values'}",
                        path=path, line=where)
    return value


def _from_object(obj: Mapping[str, Any], where: int | str, path: Path, skipped: list[int]) -> Iterable[Trace]:
    if "resourceSpans" in obj:
        n = 0
        for rs in _list_of(obj, "resourceSpans", where, path):
            scope_key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"
            for ss in _list_of(rs, scope_key, where, path):
                for span in _list_of(ss, "spans", where, path):
                    n += 1
                    t = trace_from_span(span, f"{where}, span {n}" if where else f"span {n}", path)
                    if t is None:
                        skipped[0] += 1
                    else:
                        yield t
    elif "query" in obj or "contexts" in obj:
        yield _record(obj, where, path)
    elif "attributes" in obj or any(str(k).startswith(("input.", "retrieval.")) for k in obj):
        t = trace_from_span(obj, where, path)
        if t is None:
            skipped[0] += 1
        else:
            yield t
    else:
        raise DataError("neither a trace (query, contexts) nor an OpenInference span (attributes with input.value "
                        f"and retrieval.documents.*); fields: {', '.join(sorted(map(str, obj)))[:120]}", path=path, line=where)


def read_traces(path: str | Path) -> tuple[list[Trace], int]:
    """The traces of a file, and how many spans were skipped (no retrieval documents)."""

    path = Path(path)
    if not path.exists():
        raise DataError("traces file not found", path=path)
    skipped = [0]
    out: list[Trace] = []
    seen: dict[str, int | str] = {}
    for where, obj in read_json_records(path):
        for t in _from_object(obj, where, path, skipped):
            if t.id in seen:
                t.id = f"{t.id}@{where}"
            seen[t.id] = where
            out.append(t)
    if not out:
        raise DataError("no traces (and no retriever spans) in the file", path=path)
    return out, skipped[0]


# ------------------------------------------------------------------------------------------ corpus side


def read_corpus_dir(path: str | Path) -> list[Document]:

    root = Path(path)
    if not root.is_dir():
        raise DataError("--corpus: not a folder", path=root)
    if data_file(root / "corpus.jsonl").is_file():

        return read_corpus(root / "corpus.jsonl")

    return read_documents(root)


# ------------------------------------------------------------------------------------------ verdicts
def judge(trace: Trace, matcher: Matcher, view: CorpusView | None, k: int) -> dict[str, Any]:
    """The audit row of one trace: contexts, whether each reference piece was reached, and for a miss the
    verdict, its evidence, where the evidence was and which fix finds it."""
    texts = [c["text"] for c in trace.contexts]
    ctx_docs = [view.doc_of(c, matcher) if view else (c.get("doc_id") or None) for c in trace.contexts]
    pieces = [(p, *matcher.reached(p, texts)) for p in trace.reference]
    gold: dict[str, list[str]] = {}  # piece -> documents holding it
    if view is not None:
        gold = {p: view.locate(p, matcher) for p in trace.reference}
    gold_docs = sorted({d for ds in gold.values() for d in ds})
    row: dict[str, Any] = {
        "query_id": trace.id, "query": trace.query, "judged": bool(trace.reference), "k": k, "line": trace.where,
        "gold_docs": gold_docs,
        "docs": [{"rank": i + 1, "doc_id": ctx_docs[i] or c["id"], "score": c["score"],
                  "gold": any(matcher.contained(p, c["text"]) for p in trace.reference), "text": c["text"]}
                 for i, c in enumerate(trace.contexts)],
        "gold_in_top_k": sorted(set(gold_docs) & {d for d in ctx_docs if d}),
        "reached": all(ok for _, ok, _ in pieces) if pieces else None,
        "pieces": [{"reference": p, "reached": ok, "how": how} for p, ok, how in pieces],
    }
    if not pieces or row["reached"]:
        return row
    missed = [p for p, ok, _ in pieces if not ok]
    verdict, evidence = trace_cause(trace, missed, pieces, texts, ctx_docs, gold, view, k)
    row.update({"verdict": verdict, "evidence": evidence,
                "trace": {"reference": missed, "where": where_evidence(missed, gold, view, matcher), "fix": suggest_fix(verdict, trace, missed, gold, view, matcher, k)}})
    return row


# ------------------------------------------------------------------------------------------ the audit
def audit_traces(path: str | Path, *, corpus_dir: str | Path | None = None, k: int = 10,
                 threshold: float = RECALL_THRESHOLD, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read, judge and diagnose every trace: rows, verdicts, signals, documents (for the report)."""

    traces, skipped = read_traces(path)
    matcher = Matcher(threshold)
    corpus = read_corpus_dir(corpus_dir) if corpus_dir else []
    view = corpus_view(corpus, traces, k=k, overrides=overrides) if corpus else None
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
            bm25=view.companions["bm25"].get(t.id) if view else None, dense=view.companions["dense"].get(t.id) if view else None)
    return {"rows": rows, "verdicts": verdicts, "signals": signals, "skipped_spans": skipped,
            "docs": {d.id: d for d in corpus}, "threshold": threshold, "n_traces": len(traces)}
