"""OTLP JSON (``ExportTraceServiceRequest``: ``resourceSpans`` -> ``scopeSpans`` (or the older
``instrumentationLibrarySpans``) -> ``spans``, attributes as ``{"key", "value": AnyValue}`` lists, in both
protobuf-JSON spellings: camelCase and field names, Phoenix's OTLP download and ``{"data": [...]}`` API), and one
OTLP span per line. Attributes follow OpenInference (``openinference.span.kind``, ``retrieval.documents.<i>.document.*``),
OpenLLMetry (``traceloop.span.kind``; vector-DB hits as ``db.query.result`` events) or the OpenTelemetry GenAI
conventions; spans written by MLflow or the Langfuse SDK are read in their dialect (:data:`DIALECTS`)."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from benchmarks.diagnosis.trace_formats import langfuse, mlflow_traces
from benchmarks.diagnosis.trace_formats.common import (GENAI_LLM_OPERATIONS, FormatError, Span, TraceFormat, flatten,
                                                       ident, list_of, otlp_attributes)

#: (is this span's attributes in the dialect, read it) of the tools that write their own attributes over OTLP
DIALECTS = ((mlflow_traces.is_otlp_dialect, mlflow_traces.mlflow_span), (langfuse.is_otlp_dialect, langfuse.otel_span))


def read_span(span: Mapping[str, Any], where: int | str, source: str = "otlp") -> Span:
    raw = otlp_attributes(span.get("attributes") or [])
    events = []
    for ev in span.get("events") or []:
        if isinstance(ev, dict):
            events.append((str(ev.get("name", "")), flatten(otlp_attributes(ev.get("attributes") or []))))
    ids = (ident(span.get("traceId") or span.get("trace_id")), ident(span.get("spanId") or span.get("span_id")),
           ident(span.get("parentSpanId") or span.get("parent_span_id")), str(span.get("name", "")))
    for is_dialect, read_dialect in DIALECTS:
        if is_dialect(raw):
            return read_dialect(raw, where, *ids, events=events)
    attrs = flatten(raw)
    kind = str(attrs.get("openinference.span.kind") or attrs.get("traceloop.span.kind") or "").upper()
    if not kind and attrs.get("gen_ai.operation.name") in GENAI_LLM_OPERATIONS:
        kind = "LLM"  # the OpenTelemetry GenAI conventions (Traceloop's current instrumentations) name no span kind
    return Span(where, source, *ids, kind, attrs, events)


def read_export(obj: Mapping[str, Any], where: int | str) -> Iterator[Span]:
    n = 0
    for rs in list_of(obj, ("resourceSpans", "resource_spans"), "resourceSpans"):
        for ss in list_of(rs, ("scopeSpans", "scope_spans", "instrumentationLibrarySpans", "instrumentation_library_spans"),
                           "scopeSpans"):
            for span in list_of(ss, ("spans",), "spans"):
                n += 1
                here = f"{where}, span {n}" if where else f"span {n}"
                try:
                    converted = read_span(span, here)
                except ValueError as err:
                    raise FormatError(str(err), here) from None
                yield converted


def is_export(obj: Mapping[str, Any]) -> bool:
    return "resourceSpans" in obj or "resource_spans" in obj


def is_span(obj: Mapping[str, Any]) -> bool:
    return isinstance(obj.get("attributes"), list) and ("spanId" in obj or "span_id" in obj or "traceId" in obj
                                                        or "trace_id" in obj or "name" in obj)


FORMATS = (TraceFormat("otlp export", is_export, read_export),
           TraceFormat("otlp span", is_span, lambda obj, where: iter([read_span(obj, where)])))
