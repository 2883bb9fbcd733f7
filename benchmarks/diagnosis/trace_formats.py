"""Reading what tracing tools export, as they write it: every record becomes :class:`Span` objects in one shape,
and the retriever spans among them become traces (:func:`benchmarks.diagnosis.traces.read_traces`).

Formats (each tested on a fixture written from its specification or exporter's source, cited in
``tests/test_trace_formats.py``):

* **OTLP JSON** (``ExportTraceServiceRequest``): ``resourceSpans`` -> ``scopeSpans`` (or the older
  ``instrumentationLibrarySpans``) -> ``spans``, attributes as ``{"key", "value": AnyValue}`` lists, in both
  protobuf-JSON spellings: camelCase (``stringValue``, ``arrayValue``, ``kvlistValue``, ``traceId``) and the
  field names (``resource_spans``, ``string_value``, ``trace_id``: Phoenix's OTLP download and its
  ``/v1/projects/{id}/spans/otlpv1`` API, ``{"data": [...]}``). 64-bit integers may be strings.
* **One span per line**: an OTLP span object; a Phoenix REST span (``context.{trace_id,span_id}``,
  ``span_kind``, ``parent_id``, ``attributes`` nested or flat); a row of Phoenix's spans dataframe written as
  JSON lines or parquet (``context.span_id``, ``span_kind``, ``attributes.input.value``,
  ``attributes.retrieval.documents`` as a list of ``{"document.content", ...}`` or as a JSON string).
* **OpenInference attributes**, flat (``retrieval.documents.0.document.content``) or nested
  (``{"retrieval": {"documents": [{"document": {...}}]}}``); ``retrieval.documents`` and ``metadata`` may be JSON
  strings.
* **LangSmith runs** (``run_type``, ``inputs``, ``outputs``; a retriever run's ``outputs.documents`` hold
  ``page_content`` and ``metadata``; ``trace_id``, ``parent_run_id``).
* **Langfuse observations** (``type`` SPAN / GENERATION / RETRIEVER / ..., ``traceId``, ``input``,
  ``output``, ``parentObservationId``; an observation list or the API's ``{"data": [...]}``): an observation
  whose output is a list of documents (``page_content`` / ``pageContent`` / ``content`` / ``text``) is a
  retriever span, its ``input`` (a string or ``{"query": ...}``) the query.
* **OpenLLMetry / Traceloop vector-DB spans**: ``db.system`` plus one ``db.query.result`` event per hit
  (``db.query.result.{id,document,score,distance,metadata}``); the query comes from the span
  (``db.query.text``, ``input.value``) or the nearest ancestor with ``traceloop.entity.input``.

The answer a trace generated comes from its LLM span (``output.value``, ``llm.output_messages.0.message.content``,
``gen_ai.completion.0.content``; LangSmith ``llm`` run ``generations``; a Langfuse ``GENERATION`` output). A
reference comes from the retriever span or any span of its trace: ``reference``, ``expected_output``,
``metadata.reference``, ``metadata.expected_output`` (``metadata`` may be a JSON string), LangSmith's
``extra.metadata.reference``, Langfuse's ``metadata.reference``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from benchmarks.datasets.limits import current as current_limits, size
from benchmarks.diagnosis.records import reference_pieces
from benchmarks.errors import DataError

RETRIEVER = "RETRIEVER"
#: attribute names a reference is read from (on the retriever span, else any span of its trace)
REFERENCE_KEYS = ("reference", "expected_output", "metadata.reference", "metadata.expected_output")
#: attribute names of the query on a span (OpenInference, OpenLLMetry)
QUERY_KEYS = ("input.value", "db.query.text", "db.vector.query.text", "gen_ai.prompt.0.content")
#: attribute names of a generated answer on an LLM span
ANSWER_KEYS = ("output.value", "llm.output_messages.0.message.content", "gen_ai.completion.0.content")
VECTOR_DB_EVENT = "db.query.result"
LANGFUSE_TYPES = {"SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING",
                  "GUARDRAIL"}
EXPECTED = ("a trace record {query, contexts}; OpenInference / OpenTelemetry spans (resourceSpans or "
            "resource_spans exports, one span per line, Phoenix span dataframes); LangSmith runs (run_type, "
            "inputs, outputs); Langfuse observations (type, traceId, input, output); OpenLLMetry vector-DB spans "
            "(db.query.result events)")


class FormatError(ValueError):
    """A record of a known format whose content is broken; ``where`` names the span inside it."""

    def __init__(self, message: str, where: int | str) -> None:
        super().__init__(message)
        self.where = where


@dataclass
class Span:
    """One span (or run, or observation) in one shape, whatever wrote it."""

    where: int | str
    source: str  # otlp | openinference | phoenix | langsmith | langfuse
    trace_id: str | None
    span_id: str | None
    parent_id: str | None
    name: str
    kind: str  # upper case: RETRIEVER, LLM, CHAIN, ... ("" when the span does not say)
    attrs: dict[str, Any] = field(default_factory=dict)  # flat, dotted keys
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # formats whose fields are not attributes (LangSmith, Langfuse) fill these directly
    query: str | None = None
    documents: list[dict[str, Any]] | None = None  # [{"id", "content", "score", "metadata"}]
    answer: str | None = None

    def docs(self) -> list[dict[str, Any]]:
        """The retrieved documents, in rank order (empty for a span that retrieved nothing)."""
        if self.documents is not None:
            return self.documents
        found: dict[int, dict[str, Any]] = {}
        for key, value in self.attrs.items():
            if key.startswith("retrieval.documents."):
                parts = key.split(".")
                if len(parts) >= 5 and parts[2].isdigit() and parts[3] == "document":
                    found.setdefault(int(parts[2]), {})[".".join(parts[4:])] = value
        out = [{"id": d.get("id"), "content": d.get("content"), "score": d.get("score"),
                "metadata": _metadata(d)} for _, d in sorted(found.items())]
        if not out:  # OpenLLMetry: one db.query.result event per hit
            for name, ev in self.events:
                if name == VECTOR_DB_EVENT:
                    score = ev.get("db.query.result.score")
                    if score is None and isinstance(ev.get("db.query.result.distance"), (int, float)):
                        score = -float(ev["db.query.result.distance"])  # a smaller distance ranks first
                    out.append({"id": ev.get("db.query.result.id"), "content": ev.get("db.query.result.document"),
                                "score": score, "metadata": _json_object(ev.get("db.query.result.metadata"))})
        return out

    def is_retriever(self) -> bool:
        return self.kind == RETRIEVER or bool(self.docs())

    def reference(self) -> list[str]:
        for key in REFERENCE_KEYS:
            value = self.attrs.get(key)
            pieces = reference_pieces(value)
            if pieces:
                return pieces
        return []


@dataclass
class ReadReport:
    """What a traces file held: records and spans read, retriever spans, the rest by kind, keys seen."""

    records: int = 0
    spans: int = 0
    retriever_spans: int = 0
    skipped: Counter = field(default_factory=Counter)  # kind -> spans that are not retriever spans
    formats: Counter = field(default_factory=Counter)
    keys: Counter = field(default_factory=Counter)  # attribute keys (first two parts) of the spans read

    def line(self) -> str:
        skipped = ", ".join(f"{k or 'no kind'} {n}" for k, n in self.skipped.most_common())
        fmts = ", ".join(f"{f} {n}" for f, n in self.formats.most_common())
        if not self.spans:
            return f"{self.records} record{'s' if self.records != 1 else ''} ({fmts or 'none'})"
        return (f"{self.records} record{'s' if self.records != 1 else ''} ({fmts}): {self.spans} spans, {self.retriever_spans} retriever spans"
                + (f"; skipped by kind: {skipped}" if skipped else ""))


# ------------------------------------------------------------------------------------------ values
def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _metadata(doc: Mapping[str, Any]) -> dict[str, Any]:
    meta = _json_object(doc.get("metadata"))
    meta.update({k.split(".", 1)[1]: v for k, v in doc.items() if k.startswith("metadata.")})
    return meta


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` (camelCase or field-name spelling) as Python; ValueError for one whose content
    does not match its key."""
    if not isinstance(value, dict):
        return value
    for camel, snake in (("stringValue", "string_value"), ("boolValue", "bool_value"), ("doubleValue", "double_value"),
                         ("bytesValue", "bytes_value")):
        for key in (camel, snake):
            if key in value:
                return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, (int, str)) or not str(v).lstrip("-").isdigit():
                raise ValueError(f"{key} {v!r} is not an integer")
            return int(v)
    for key in ("arrayValue", "array_value"):
        if key in value:
            arr = value[key]
            values = arr.get("values", []) if isinstance(arr, dict) else None
            if not isinstance(values, list):
                raise ValueError(f"{key} must be an object with a list 'values'")
            return [any_value(v) for v in values]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            kv = value[key]
            values = kv.get("values", []) if isinstance(kv, dict) else None
            if not isinstance(values, list):
                raise ValueError(f"{key} must be an object with a list 'values'")
            return otlp_attributes(values)
    return None if not value else value


def otlp_attributes(items: Any) -> dict[str, Any]:
    """``[{"key": k, "value": AnyValue}]`` as a dict (ValueError for a malformed value)."""
    if not isinstance(items, list):
        raise ValueError(f"attributes must be a list of {{key, value}} objects, got {type(items).__name__}")
    return {str(a.get("key")): any_value(a.get("value")) for a in items if isinstance(a, dict) and a.get("key") is not None}


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested attribute objects as dotted keys; lists of objects by index (``retrieval.documents.0.document.id``);
    ``retrieval.documents`` and ``metadata`` held as JSON strings are parsed first."""
    out: dict[str, Any] = {}
    if isinstance(node, str) and (prefix.endswith("retrieval.documents") or prefix.endswith("metadata")) \
            and node.strip()[:1] in "[{":
        try:
            node = json.loads(node)
        except ValueError:
            pass
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        if prefix and not node:
            out[prefix] = {}
    elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        for i, v in enumerate(node):
            out.update(flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = node
    return out


# ------------------------------------------------------------------------------------------ one record
def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _id(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _otlp_span(span: Mapping[str, Any], where: int | str, source: str = "otlp") -> Span:
    attrs = flatten(otlp_attributes(span.get("attributes") or []))
    events = []
    for ev in span.get("events") or []:
        if isinstance(ev, dict):
            events.append((str(ev.get("name", "")), flatten(otlp_attributes(ev.get("attributes") or []))))
    kind = str(attrs.get("openinference.span.kind") or attrs.get("traceloop.span.kind") or "").upper()
    return Span(where, source, _id(span.get("traceId") or span.get("trace_id")), _id(span.get("spanId") or span.get("span_id")),
                _id(span.get("parentSpanId") or span.get("parent_span_id")), str(span.get("name", "")), kind, attrs, events)


def _phoenix_span(obj: Mapping[str, Any], where: int | str) -> Span:
    """A Phoenix REST span (``context``, ``span_kind``, ``attributes`` dict) or a spans-dataframe row
    (``context.span_id``, ``attributes.input.value``, ...), or a bare OpenInference attribute object."""
    flat = flatten(obj)  # also parses retrieval.documents and metadata held as JSON strings (a dataframe cell)
    if isinstance(obj.get("attributes"), dict) or any(k.startswith("attributes.") for k in flat):
        attrs = {k[len("attributes."):]: v for k, v in flat.items() if k.startswith("attributes.")}
        source = "phoenix"
    else:
        attrs, source = flat, "openinference"
    events = []
    for ev in obj.get("events") or []:
        if isinstance(ev, dict):
            events.append((str(ev.get("name", "")), flatten(ev.get("attributes") or {})))
    kind = str(obj.get("span_kind") or flat.get("span_kind") or attrs.get("openinference.span.kind") or "").upper()
    return Span(where, source, _id(flat.get("context.trace_id") or obj.get("trace_id")),
                _id(flat.get("context.span_id") or obj.get("span_id")),
                _id(obj.get("parent_id") or flat.get("parent_id")), str(obj.get("name", "")), kind, attrs, events)


def _documents(items: Any) -> list[dict[str, Any]] | None:
    """A list of LangChain-style documents (``page_content``/``pageContent``/``content``/``text`` + ``metadata``)."""
    if isinstance(items, dict):
        items = items.get("documents") if isinstance(items.get("documents"), list) else None
    if not isinstance(items, list) or not items or not all(isinstance(d, dict) for d in items):
        return None
    out = []
    for d in items:
        text = next((d[k] for k in ("page_content", "pageContent", "content", "text") if isinstance(d.get(k), str)), None)
        if text is None:
            return None
        meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        out.append({"id": d.get("id") or meta.get("id") or meta.get("doc_id") or meta.get("source"), "content": text,
                    "score": d.get("score", meta.get("score")), "metadata": meta})
    return out


def query_of(value: Any) -> str | None:
    """A query from an ``input``: a string, or ``{"query"|"question"|"input": str}``."""
    if isinstance(value, str):
        return text_or_none(value)
    if isinstance(value, dict):
        for key in ("query", "question", "input", "text"):
            if text_or_none(value.get(key)):
                return value[key]
    return None


def _answer_of(value: Any) -> str | None:
    """An answer from an LLM output: a string, ``{"content"}``, ``{"output"|"answer"|"text"}``, a chat message,
    or LangChain ``generations`` (``[[{"text"}]]`` or ``[[{"message": {"content"}}]]``)."""
    if isinstance(value, str):
        return text_or_none(value)
    if isinstance(value, list) and value:
        return _answer_of(value[0])
    if isinstance(value, dict):
        for key in ("content", "answer", "output", "text", "result"):
            got = _answer_of(value.get(key)) if key in value else None
            if got:
                return got
        if "generations" in value:
            return _answer_of(value["generations"])
        if isinstance(value.get("message"), dict):
            msg = value["message"]
            return _answer_of(msg.get("content") or (msg.get("kwargs") or {}).get("content"))
    return None


def _langsmith_run(obj: Mapping[str, Any], where: int | str) -> Span:
    run_type = str(obj.get("run_type", "")).upper()
    meta = ((obj.get("extra") or {}).get("metadata") or {}) if isinstance(obj.get("extra"), dict) else {}
    attrs = flatten({"metadata": meta}) if meta else {}
    span = Span(where, "langsmith", _id(obj.get("trace_id")), _id(obj.get("id")), _id(obj.get("parent_run_id")),
                str(obj.get("name", "")), run_type, attrs)
    inputs, outputs = obj.get("inputs") or {}, obj.get("outputs") or {}
    if run_type == RETRIEVER:
        span.query = query_of(inputs)
        span.documents = _documents(outputs) or []
    elif run_type in ("LLM", "CHAIN"):
        span.answer = _answer_of(outputs)
    return span


def _langfuse_observation(obj: Mapping[str, Any], where: int | str) -> Span:
    kind = str(obj.get("type", "")).upper()
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else _json_object(obj.get("metadata"))
    span = Span(where, "langfuse", _id(obj.get("traceId") or obj.get("trace_id")), _id(obj.get("id")),
                _id(obj.get("parentObservationId") or obj.get("parent_observation_id")), str(obj.get("name", "")), kind,
                flatten({"metadata": meta}) if meta else {})
    docs = _documents(obj.get("output"))
    if docs is not None or kind == RETRIEVER:
        span.kind = RETRIEVER
        span.documents = docs or []
        span.query = query_of(obj.get("input"))
    elif kind == "GENERATION":
        span.kind = "LLM"
        span.answer = _answer_of(obj.get("output"))
    return span


def _list_of(node: Any, keys: tuple[str, ...], what: str) -> list[Any]:
    """``node[key]`` (the first of ``keys`` present) as a list of objects; absent or null: empty; else ValueError."""
    if not isinstance(node, Mapping):
        raise ValueError(f"expected an object holding {what!r}, got {type(node).__name__}")
    key = next((k for k in keys if k in node), None)
    value = node.get(key) if key else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"{key!r} must be a list of objects, got "
                         f"{type(value).__name__ if not isinstance(value, list) else 'a list holding other values'}")
    return value


def spans_of(obj: Mapping[str, Any], where: int | str) -> Iterator[Span] | None:
    """The spans one record holds, or None when the record is no span format (a trace record, or unknown).
    ValueError for a record of a known format whose structure is broken."""
    if "resourceSpans" in obj or "resource_spans" in obj:
        return _export(obj, where)
    if "run_type" in obj and ("inputs" in obj or "outputs" in obj):
        return iter([_langsmith_run(obj, where)])
    if str(obj.get("type", "")).upper() in LANGFUSE_TYPES and ("traceId" in obj or "trace_id" in obj) \
            and ("input" in obj or "output" in obj):
        return iter([_langfuse_observation(obj, where)])
    if isinstance(obj.get("attributes"), list) and ("spanId" in obj or "span_id" in obj or "traceId" in obj
                                                    or "trace_id" in obj or "name" in obj):
        return iter([_otlp_span(obj, where)])
    if "attributes" in obj or "span_kind" in obj or "context" in obj and isinstance(obj["context"], dict) \
            or any(str(k).startswith(("attributes.", "context.", "input.", "retrieval.", "openinference.")) for k in obj):
        if "attributes" in obj and not isinstance(obj["attributes"], (dict, list)):
            raise ValueError(f"'attributes' must be an object or a list, got {type(obj['attributes']).__name__}")
        return iter([_phoenix_span(obj, where)])
    return None


def _export(obj: Mapping[str, Any], where: int | str) -> Iterator[Span]:
    n = 0
    for rs in _list_of(obj, ("resourceSpans", "resource_spans"), "resourceSpans"):
        for ss in _list_of(rs, ("scopeSpans", "scope_spans", "instrumentationLibrarySpans", "instrumentation_library_spans"),
                           "scopeSpans"):
            for span in _list_of(ss, ("spans",), "spans"):
                n += 1
                here = f"{where}, span {n}" if where else f"span {n}"
                try:
                    converted = _otlp_span(span, here)
                except ValueError as err:
                    raise FormatError(str(err), here) from None
                yield converted


def expand(obj: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The records inside an API response (``{"data": [...]}``: Phoenix's and Langfuse's), or None."""
    data = obj.get("data")
    if isinstance(data, list) and set(obj) <= {"data", "next_cursor", "meta", "nextCursor", "cursor"}:
        return [d for d in data if isinstance(d, Mapping)]
    return None


def read_parquet(path: Path) -> Iterable[tuple[int | str, dict[str, Any]]]:
    """The rows of a parquet file (Phoenix's spans dataframe saved with ``to_parquet``) as records."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading .parquet traces needs pyarrow (pip install pyarrow)", path=path) from None
    lim = current_limits()
    if path.stat().st_size > lim.json_file_bytes:  # read whole, like a .json file: bounded by the same limit
        raise DataError(f"a .parquet file larger than {size(lim.json_file_bytes)} (limits.json_file_mb; write the spans "
                        "as JSON lines to read them a line at a time)", path=path)
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file
        raise DataError(f"not a readable parquet file ({type(err).__name__}: {str(err)[:120]})", path=path) from None
    for i, row in enumerate(table.to_pylist(), 1):
        yield f"row {i}", {k: v for k, v in row.items() if v is not None}
