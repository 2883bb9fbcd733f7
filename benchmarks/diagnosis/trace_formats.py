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

* **MLflow traces**: ``mlflow traces get`` / ``Trace.to_json()`` (``{"info": {trace_id, assessments}, "data":
  {"spans": [...]}}``, span attributes as JSON strings: ``mlflow.spanType``, ``mlflow.spanInputs``,
  ``mlflow.spanOutputs``); a row of ``mlflow.search_traces()``'s DataFrame written as JSON (``trace`` holding the
  trace JSON, or ``spans`` and ``assessments``); MLflow spans as OTLP (``Span.to_otel_proto()``: the same
  ``mlflow.*`` attributes as values). A retriever span's outputs are documents (``page_content``, ``metadata``
  with ``doc_uri``/``source``, ``id``); the reference is the trace's assessment ``expected_facts`` (one piece a
  fact) or ``expected_response``.
* **Langfuse SDK spans** (OpenTelemetry, ``langfuse.observation.type``/``input``/``output`` and
  ``langfuse.observation.metadata.*``/``langfuse.trace.metadata.*`` attributes, values JSON-encoded).
* **Evaluation datasets** (:func:`dataset_record`): Ragas ``EvaluationDataset`` rows (``user_input,
  retrieved_contexts, response, reference``), the older Ragas layout (``question, contexts, answer,
  ground_truth``), DeepEval test cases and goldens (``input, actual_output, expected_output,
  retrieval_context``); in JSON lines, JSON or CSV, a list column as JSON, Python text, numpy's printed array,
  or DeepEval's ``|``-joined text.

The answer a trace generated comes from its LLM span: ``llm.output_messages.<i>.message.content`` (the last),
``gen_ai.completion.<i>.content``, else ``output.value`` when it is plain text (when it is JSON — LangChain's
``LLMResult`` — the generation's text inside it); an MLflow ``LLM``/``CHAT_MODEL`` span's outputs; LangSmith
``llm`` run ``generations``; a Langfuse ``GENERATION`` output. A reference comes from the retriever span or any
span of its trace: ``reference``, ``expected_output``, ``metadata.reference``, ``metadata.expected_output``
(``metadata`` may be a JSON string), LangSmith's ``extra.metadata.reference``, Langfuse's ``metadata.reference``,
Traceloop's association property ``reference``, MLflow's assessments.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from benchmarks.datasets.limits import current as current_limits, size
from benchmarks.diagnosis.records import reference_pieces
from benchmarks.errors import DataError

RETRIEVER = "RETRIEVER"
#: attribute names a reference is read from (on the retriever span, else any span of its trace)
REFERENCE_KEYS = ("reference", "expected_output", "metadata.reference", "metadata.expected_output",
                  "traceloop.association.properties.reference")
#: attribute names of the query on a span (OpenInference, OpenLLMetry)
QUERY_KEYS = ("input.value", "db.query.text", "db.vector.query.text", "gen_ai.prompt.0.content")
#: MLflow assessment names read as a trace's reference, in order (``expected_facts``: one piece a fact)
MLFLOW_REFERENCES = ("expected_facts", "expected_response", "expected_output", "reference", "ground_truth")
MLFLOW_KINDS = {"CHAT_MODEL": "LLM"}
#: ``gen_ai.operation.name`` values of a model call (OpenTelemetry GenAI semantic conventions)
GENAI_LLM_OPERATIONS = ("chat", "text_completion", "generate_content")
VECTOR_DB_EVENT = "db.query.result"
LANGFUSE_TYPES = {"SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING",
                  "GUARDRAIL"}
EXPECTED = ("a trace record {query, contexts}; OpenInference / OpenTelemetry spans (resourceSpans or "
            "resource_spans exports, one span per line, Phoenix span dataframes); MLflow traces (info, data.spans; "
            "search_traces rows); LangSmith runs (run_type, inputs, outputs); Langfuse observations (type, traceId, "
            "input, output) and SDK spans; OpenLLMetry vector-DB spans (db.query.result events); Ragas or DeepEval "
            "datasets (user_input/question/input with retrieved_contexts/contexts/retrieval_context)")


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
    references: list[str] | None = None  # the trace's reference where the format keeps it off the spans (MLflow)
    dropped: int = 0  # retrieved documents left out: no text (page_content null, no document.content)

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
        plain = self.attrs.get("retrieval.documents")
        if not out and isinstance(plain, list) and plain and all(isinstance(x, str) for x in plain):
            out = [{"id": None, "content": x, "score": None, "metadata": {}} for x in plain]  # documents as plain strings
        if not out:  # OpenLLMetry: one db.query.result event per hit
            for name, ev in self.events:
                if name == VECTOR_DB_EVENT:
                    score = ev.get("db.query.result.score")
                    if score is None and isinstance(ev.get("db.query.result.distance"), (int, float)):
                        score = -float(ev["db.query.result.distance"])  # a smaller distance ranks first
                    meta = _json_object(ev.get("db.query.result.metadata"))  # a JSON string flatten() already opened:
                    meta.update({k[len("db.query.result.metadata."):]: v for k, v in ev.items()
                                 if k.startswith("db.query.result.metadata.")})
                    out.append({"id": ev.get("db.query.result.id"), "content": ev.get("db.query.result.document"),
                                "score": score, "metadata": meta})
        return out

    def is_retriever(self) -> bool:
        return self.kind == RETRIEVER or bool(self.docs())

    def cut(self) -> bool:
        """Whether its documents' JSON was cut off (the complete ones were read)."""
        return bool(self.attrs.get("retrieval.documents.__cut__"))

    def why_no_documents(self) -> str:
        """Why a retriever span yields no document, for the read report (naming its line)."""
        raw = self.attrs.get("retrieval.documents")
        if isinstance(raw, str):
            return "retrieval.documents is not valid JSON (cut off?)"
        if isinstance(raw, list):
            return "retrieval.documents holds no document objects"
        if self.dropped:
            return f"all {self.dropped} documents have no text"
        return "no documents"

    def reference(self) -> list[str]:
        if self.references:
            return list(self.references)
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
    problems: list[str] = field(default_factory=list)  # "<where>: why" of spans read only in part, or not at all
    dropped: int = 0  # documents left out of otherwise read spans (no text)

    def line(self) -> str:
        skipped = ", ".join(f"{k or 'no kind'} {n}" for k, n in self.skipped.most_common())
        fmts = ", ".join(f"{f} {n}" for f, n in self.formats.most_common())
        if not self.spans:
            return f"{self.records} record{'s' if self.records != 1 else ''} ({fmts or 'none'})"
        shown = "; ".join(self.problems[:3]) + (f" and {len(self.problems) - 3} more" if len(self.problems) > 3 else "")
        return (f"{self.records} record{'s' if self.records != 1 else ''} ({fmts}): {self.spans} spans, {self.retriever_spans} retriever spans"
                + (f"; skipped by kind: {skipped}" if skipped else "")
                + (f"; {self.dropped} documents without text left out" if self.dropped else "")
                + (f"; {shown}" if shown else ""))


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


def decoded(value: Any) -> Any:
    """A value a format stores JSON-encoded (MLflow's span attributes, Langfuse's): an object, list, string or
    constant parsed; anything else (plain text, a number) as it is."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ('[', '{', '"') or text in ("null", "true", "false"):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def _string_literals(text: str) -> list[str] | None:
    """The string literals of a printed Python list or numpy array (``['a', 'b']``; numpy prints
    ``['a'\n 'b']`` with no commas), or None when the text holds anything but strings and brackets."""
    out: list[str] = []
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING:
                value = ast.literal_eval(tok.string)
                if not isinstance(value, str):
                    return None
                out.append(value)
            elif tok.type not in skip and tok.string not in ("[", "]", ","):
                return None
    except (tokenize.TokenError, SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    return out


def list_cell(value: Any, delimiter: str | None = None) -> list[str] | None:
    """A list of passages as a dataset file holds it: a list; JSON text; a printed Python list or numpy array
    (what pandas writes to CSV for a list column); with ``delimiter``, text joined by it (DeepEval's CSV and JSON
    lines; its own reader splits the same way); else one string. None for anything else."""
    if isinstance(value, list):
        return list(value) if all(isinstance(x, str) for x in value) else None
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            got = json.loads(text)
        except ValueError:
            got = _string_literals(text)
        return list(got) if isinstance(got, list) and all(isinstance(x, str) for x in got) else None
    if delimiter:
        return text.split(delimiter)
    return [text]


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


def complete_items(text: str) -> list[Any]:
    """The complete items at the start of a JSON list that was cut off (``[{...}, {...}, {"docu``)."""
    decoder = json.JSONDecoder()
    out: list[Any] = []
    at = text.find("[") + 1
    while at:
        while at < len(text) and text[at] in " \t\r\n,":
            at += 1
        try:
            item, at = decoder.raw_decode(text, at)
        except ValueError:
            break
        out.append(item)
    return out


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested attribute objects as dotted keys; lists of objects by index (``retrieval.documents.0.document.id``);
    ``retrieval.documents`` and ``metadata`` held as JSON strings are parsed first."""
    out: dict[str, Any] = {}
    if isinstance(node, str) and (prefix.endswith("retrieval.documents") or prefix.endswith("metadata")) \
            and node.strip()[:1] in "[{":
        try:
            node = json.loads(node)
        except ValueError:
            if prefix.endswith("retrieval.documents"):
                whole = complete_items(node)
                if whole:  # a list cut off (a dataframe cell's limit): its complete documents, and the cut noted
                    out[f"{prefix}.__cut__"] = True
                    node = whole
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
    raw = otlp_attributes(span.get("attributes") or [])
    events = []
    for ev in span.get("events") or []:
        if isinstance(ev, dict):
            events.append((str(ev.get("name", "")), flatten(otlp_attributes(ev.get("attributes") or []))))
    ids = (_id(span.get("traceId") or span.get("trace_id")), _id(span.get("spanId") or span.get("span_id")),
           _id(span.get("parentSpanId") or span.get("parent_span_id")), str(span.get("name", "")))
    if "mlflow.spanType" in raw:  # MLflow's Span.to_otel_proto()
        return _mlflow_span(raw, where, *ids, events=events)
    if any(k.startswith("langfuse.observation.") for k in raw):  # the Langfuse SDK's spans
        return _langfuse_otel_span(raw, where, *ids, events=events)
    attrs = flatten(raw)
    kind = str(attrs.get("openinference.span.kind") or attrs.get("traceloop.span.kind") or "").upper()
    if not kind and attrs.get("gen_ai.operation.name") in GENAI_LLM_OPERATIONS:
        kind = "LLM"  # the OpenTelemetry GenAI conventions (Traceloop's current instrumentations) name no span kind
    return Span(where, source, *ids, kind, attrs, events)


def _mlflow_span(raw: Mapping[str, Any], where: int | str, trace_id: str | None, span_id: str | None,
                 parent_id: str | None, name: str, events: list | None = None) -> Span:
    """An MLflow span (its attributes JSON-encoded in a trace's JSON, plain values in OTLP): ``mlflow.spanType``,
    a retriever's ``mlflow.spanInputs`` (the query) and ``mlflow.spanOutputs`` (documents), an LLM's answer."""
    attrs = {k: decoded(v) for k, v in raw.items()}
    kind = str(attrs.get("mlflow.spanType") or "").upper()
    kind = MLFLOW_KINDS.get(kind, kind)
    inputs, outputs = attrs.pop("mlflow.spanInputs", None), attrs.pop("mlflow.spanOutputs", None)
    span = Span(where, "mlflow", _id(attrs.get("mlflow.traceRequestId")) or trace_id, span_id, parent_id, name, kind,
                flatten(attrs), list(events or []))
    if kind == RETRIEVER:
        span.query = query_of(inputs)
        span.documents = _documents(outputs, span) or []
    elif kind == "LLM":
        span.answer = _answer_of(outputs)
    return span


def _langfuse_otel_span(raw: Mapping[str, Any], where: int | str, trace_id: str | None, span_id: str | None,
                        parent_id: str | None, name: str, events: list | None = None) -> Span:
    """A span the Langfuse SDK exports: ``langfuse.observation.type`` (retriever, generation, span, chain, ...),
    ``.input`` and ``.output`` (JSON-encoded unless plain text), metadata under ``langfuse.trace.metadata.*`` and
    ``langfuse.observation.metadata.*`` (the observation's wins)."""
    meta: dict[str, Any] = {}
    for prefix in ("langfuse.trace.metadata.", "langfuse.observation.metadata."):
        meta.update({k[len(prefix):]: decoded(v) for k, v in raw.items() if k.startswith(prefix)})
    kind = str(raw.get("langfuse.observation.type") or "").upper()
    span = Span(where, "langfuse", trace_id, span_id, parent_id, name, kind, flatten({"metadata": meta}) if meta else {},
                list(events or []))
    inputs, outputs = decoded(raw.get("langfuse.observation.input")), decoded(raw.get("langfuse.observation.output"))
    docs = _documents(outputs, span)
    if docs is not None or kind == RETRIEVER:
        span.kind, span.documents, span.query = RETRIEVER, docs or [], query_of(inputs)
    elif kind == "GENERATION":
        span.kind, span.answer = "LLM", _answer_of(outputs)
    return span


def mlflow_reference(assessments: Any) -> list[str]:
    """A trace's reference from its MLflow assessments: ``expected_facts`` (one piece a fact), else
    ``expected_response`` (and the other :data:`MLFLOW_REFERENCES`); assessments marked invalid are passed over."""
    found: dict[str, list[str]] = {}
    for a in assessments if isinstance(assessments, list) else []:
        if not isinstance(a, Mapping) or a.get("valid") is False:
            continue
        name, exp = a.get("assessment_name") or a.get("name"), a.get("expectation")
        if name not in MLFLOW_REFERENCES or not isinstance(exp, Mapping) or name in found:
            continue
        value = exp.get("value")
        if value is None and isinstance(exp.get("serialized_value"), Mapping):
            value = decoded(exp["serialized_value"].get("value"))
        pieces = reference_pieces(value)
        if pieces:
            found[name] = pieces
    return next((found[n] for n in MLFLOW_REFERENCES if n in found), [])


def _mlflow_trace(obj: Mapping[str, Any], where: int | str) -> Iterator[Span]:
    """The spans of an MLflow trace (``{"info", "data": {"spans"}}``), each given the trace's id and reference."""
    info = obj.get("info") if isinstance(obj.get("info"), Mapping) else {}
    tid = _id(info.get("trace_id") or info.get("request_id"))
    refs = mlflow_reference(info.get("assessments"))
    for i, sp in enumerate(_list_of(obj.get("data") or {}, ("spans",), "spans"), 1):
        here = f"{where}, span {i}" if where else f"span {i}"
        attrs = sp.get("attributes") or {}
        try:
            raw = otlp_attributes(attrs) if isinstance(attrs, list) else attrs
            if not isinstance(raw, Mapping):
                raise ValueError(f"'attributes' must be an object, got {type(attrs).__name__}")
            span = _mlflow_span(raw, here, _id(sp.get("trace_id")), _id(sp.get("span_id")), _id(sp.get("parent_span_id")),
                                str(sp.get("name", "")))
        except ValueError as err:
            raise FormatError(str(err), here) from None
        span.trace_id = tid or span.trace_id
        span.references = refs or None
        yield span


def _search_traces_row(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A row of ``mlflow.search_traces()``'s DataFrame as an MLflow trace: its ``trace`` column (the trace's JSON),
    else its ``spans`` and ``assessments`` columns."""
    trace = decoded(obj.get("trace"))
    if isinstance(trace, Mapping):
        return trace
    return {"info": {"trace_id": obj.get("trace_id"), "assessments": obj.get("assessments") or []},
            "data": {"spans": obj.get("spans") or []}}


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


_TEXT_KEYS = ("page_content", "pageContent", "content", "text")


def _documents(items: Any, span: "Span | None" = None) -> list[dict[str, Any]] | None:
    """A list of LangChain-style documents (``page_content``/``pageContent``/``content``/``text`` + ``metadata``), or
    None when ``items`` is no such list. A document without text (``page_content: null``) is left out and counted on
    ``span`` (``dropped``): the others are kept."""
    if isinstance(items, dict):
        items = items.get("documents") if isinstance(items.get("documents"), list) else None
    if not isinstance(items, list) or not items or not all(isinstance(d, dict) for d in items):
        return None
    if not any(k in d for d in items for k in _TEXT_KEYS):
        return None  # objects of another kind, not documents
    out = []
    for d in items:
        text = next((d[k] for k in _TEXT_KEYS if isinstance(d.get(k), str)), None)
        if text is None:
            if span is not None:
                span.dropped += 1
            continue
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
        if "choices" in value:  # an OpenAI-style completion (MLflow's CHAT_MODEL outputs)
            return _answer_of(value["choices"])
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
        span.documents = _documents(outputs, span) or []
    elif run_type in ("LLM", "CHAIN"):
        span.answer = _answer_of(outputs)
    return span


def _langfuse_observation(obj: Mapping[str, Any], where: int | str) -> Span:
    kind = str(obj.get("type", "")).upper()
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else _json_object(obj.get("metadata"))
    span = Span(where, "langfuse", _id(obj.get("traceId") or obj.get("trace_id")), _id(obj.get("id")),
                _id(obj.get("parentObservationId") or obj.get("parent_observation_id")), str(obj.get("name", "")), kind,
                flatten({"metadata": meta}) if meta else {})
    docs = _documents(obj.get("output"), span)
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
    if isinstance(obj.get("info"), Mapping) and isinstance(obj.get("data"), Mapping) and "spans" in obj["data"]:
        return _mlflow_trace(obj, where)
    if "trace_id" in obj and ("trace" in obj or "spans" in obj and "assessments" in obj) and "run_type" not in obj:
        return _mlflow_trace(_search_traces_row(obj), where)
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


# ------------------------------------------------------------------------------------------ answers
_OUTPUT_MESSAGE = re.compile(r"llm\.output_messages\.(\d+)\.message\.content")
_COMPLETION = re.compile(r"gen_ai\.completion\.(\d+)\.content")


def _genai_messages(value: Any) -> str | None:
    """The text of the last assistant message of ``gen_ai.output.messages`` (OpenTelemetry GenAI conventions:
    ``[{"role", "parts": [{"type": "text", "content"}]}]``, JSON-encoded)."""
    messages = decoded(value)
    if not isinstance(messages, list):
        return None
    for m in reversed(messages):
        if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant" and isinstance(m.get("parts"), list):
            text = "".join(p["content"] for p in m["parts"] if isinstance(p, Mapping) and p.get("type", "text") == "text"
                           and isinstance(p.get("content"), str))
            if text.strip():
                return text
    return None


def answer_of(span: Span) -> str | None:
    """The answer an LLM span generated: the last ``llm.output_messages.<i>.message.content`` (OpenInference), the
    last ``gen_ai.completion.<i>.content`` (OpenLLMetry) or assistant message of ``gen_ai.output.messages`` (the
    GenAI conventions), else ``output.value`` when it is plain text — when it is JSON (LangChain's ``LLMResult``, a
    message) the text inside it, never the JSON itself."""
    if span.answer:
        return span.answer
    if span.kind != "LLM":
        return None
    if span.attrs.get("gen_ai.output.messages") is not None:
        got = _genai_messages(span.attrs["gen_ai.output.messages"])
        if got:
            return got
    for pattern in (_OUTPUT_MESSAGE, _COMPLETION):
        found = sorted((int(m.group(1)), v) for k, v in span.attrs.items()
                       if (m := pattern.fullmatch(k)) and text_or_none(v))
        if found:
            return found[-1][1]
    value = span.attrs.get("output.value")
    if not text_or_none(value):
        return None
    parsed = decoded(value)
    return value if parsed is value else _answer_of(parsed)


# ------------------------------------------------------------------------------------------ evaluation datasets
#: (layout, query, contexts, answer, reference) field names of the evaluation datasets read as traces
DATASET_LAYOUTS = (("ragas", "user_input", "retrieved_contexts", "response", "reference"),
                   ("ragas (question/contexts)", "question", "contexts", "answer", "ground_truth"),
                   ("deepeval", "input", "retrieval_context", "actual_output", "expected_output"))


def dataset_record(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """A row of an evaluation dataset (:data:`DATASET_LAYOUTS`: Ragas, its older layout, DeepEval) as
    ``{layout, query, contexts, answer, reference}``, or None for a record of another kind. ValueError for a row
    whose passages are not a list of strings."""
    for layout, q, c, a, r in DATASET_LAYOUTS:
        if q not in obj or c not in obj:
            continue
        contexts = list_cell(obj[c], "|" if layout == "deepeval" else None)
        if contexts is None:
            raise ValueError(f"field {c!r} must be a list of passages (a list, JSON or Python text), got "
                             f"{str(obj[c])[:60]!r}")
        ref = obj.get(r)
        if ref in (None, "") and layout.startswith("ragas ("):
            ref = list_cell(obj.get("ground_truths"))  # Ragas 0.0's plural
        pieces = reference_pieces(ref if ref != "" else None)
        if pieces is None:
            raise ValueError(f"field {r!r} must be a string or a list of strings, got {str(ref)[:60]!r}")
        answer = obj.get(a)
        return {"layout": layout, "query": obj[q], "contexts": [x for x in contexts if x.strip()],
                "answer": answer if isinstance(answer, str) and answer.strip() else None, "reference": pieces}
    return None
