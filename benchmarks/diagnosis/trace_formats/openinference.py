"""Phoenix and OpenInference records: a Phoenix REST span (``context.{trace_id,span_id}``, ``span_kind``,
``parent_id``, ``attributes`` nested or flat); a row of Phoenix's spans dataframe (JSON lines or parquet:
``context.span_id``, ``attributes.input.value``, ``attributes.retrieval.documents`` as a list or a JSON string);
a bare OpenInference attribute object, flat (``retrieval.documents.0.document.content``) or nested."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from benchmarks.diagnosis.trace_formats.common import Span, TraceFormat, flatten, ident

PREFIXES = ("attributes.", "context.", "input.", "retrieval.", "openinference.")


def read_phoenix_span(obj: Mapping[str, Any], where: int | str) -> Span:
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
    return Span(where, source, ident(flat.get("context.trace_id") or obj.get("trace_id")),
                ident(flat.get("context.span_id") or obj.get("span_id")),
                ident(obj.get("parent_id") or flat.get("parent_id")), str(obj.get("name", "")), kind, attrs, events)


def is_span(obj: Mapping[str, Any]) -> bool:
    """Attributes as an object (a list is OTLP's), a span kind, a context, or OpenInference's dotted keys."""
    if isinstance(obj.get("attributes"), list):
        return False
    return ("attributes" in obj or "span_kind" in obj or isinstance(obj.get("context"), dict)
            or any(str(k).startswith(PREFIXES) for k in obj))


def _read_one(obj: Mapping[str, Any], where: int | str) -> Iterator[Span]:
    if "attributes" in obj and not isinstance(obj["attributes"], dict):
        raise ValueError(f"'attributes' must be an object or a list, got {type(obj['attributes']).__name__}")
    return iter([read_phoenix_span(obj, where)])


FORMATS = (TraceFormat("phoenix/openinference span", is_span, _read_one),)
