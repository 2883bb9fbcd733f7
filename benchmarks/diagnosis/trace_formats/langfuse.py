"""Langfuse: observations as its API returns them (``type`` SPAN / GENERATION / RETRIEVER / ..., ``traceId``,
``input``, ``output``, ``parentObservationId``; an observation whose output is a list of documents is a retriever
span, its ``input`` the query) and the Langfuse dialect of OTLP spans the SDK exports
(``langfuse.observation.type``/``input``/``output``, ``langfuse.{trace,observation}.metadata.*``; read by :mod:`.otlp`)."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from benchmarks.diagnosis.trace_formats.common import (RETRIEVER, Span, TraceFormat, answer_in, decoded, documents_of,
                                                       flatten, ident, json_object, query_of)

LANGFUSE_TYPES = {"SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR", "EMBEDDING",
                  "GUARDRAIL"}


def otel_span(raw: Mapping[str, Any], where: int | str, trace_id: str | None, span_id: str | None,
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
    docs = documents_of(outputs, span)
    if docs is not None or kind == RETRIEVER:
        span.kind, span.documents, span.query = RETRIEVER, docs or [], query_of(inputs)
    elif kind == "GENERATION":
        span.kind, span.answer = "LLM", answer_in(outputs)
    return span


def read_observation(obj: Mapping[str, Any], where: int | str) -> Span:
    kind = str(obj.get("type", "")).upper()
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else json_object(obj.get("metadata"))
    span = Span(where, "langfuse", ident(obj.get("traceId") or obj.get("trace_id")), ident(obj.get("id")),
                ident(obj.get("parentObservationId") or obj.get("parent_observation_id")), str(obj.get("name", "")), kind,
                flatten({"metadata": meta}) if meta else {})
    docs = documents_of(obj.get("output"), span)
    if docs is not None or kind == RETRIEVER:
        span.kind = RETRIEVER
        span.documents = docs or []
        span.query = query_of(obj.get("input"))
    elif kind == "GENERATION":
        span.kind = "LLM"
        span.answer = answer_in(obj.get("output"))
    return span


def is_observation(obj: Mapping[str, Any]) -> bool:
    return (str(obj.get("type", "")).upper() in LANGFUSE_TYPES and ("traceId" in obj or "trace_id" in obj)
            and ("input" in obj or "output" in obj))


def is_otlp_dialect(raw: Mapping[str, Any]) -> bool:
    """An OTLP span's attributes written by the Langfuse SDK."""
    return any(k.startswith("langfuse.observation.") for k in raw)


def _read_one(obj: Mapping[str, Any], where: int | str) -> Iterator[Span]:
    return iter([read_observation(obj, where)])


FORMATS = (TraceFormat("langfuse observation", is_observation, _read_one),)
