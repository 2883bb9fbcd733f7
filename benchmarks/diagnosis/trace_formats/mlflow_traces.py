"""MLflow: ``mlflow traces get`` / ``Trace.to_json()`` (``{"info": {trace_id, assessments}, "data": {"spans"}}``,
span attributes JSON-encoded: ``mlflow.spanType``, ``mlflow.spanInputs``, ``mlflow.spanOutputs``); a row of
``mlflow.search_traces()``'s DataFrame (``trace`` holding the trace JSON, or ``spans`` and ``assessments``); and the
MLflow dialect of OTLP spans (``Span.to_otel_proto()``, read by :mod:`.otlp`). The reference is the trace's assessment
``expected_facts`` (one piece a fact) or ``expected_response``."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from benchmarks.diagnosis.records import reference_pieces
from benchmarks.diagnosis.trace_formats.common import (RETRIEVER, FormatError, Span, TraceFormat, answer_in, decoded,
                                                       documents_of, flatten, ident, list_of, otlp_attributes, query_of)

#: MLflow assessment names read as a trace's reference, in order (``expected_facts``: one piece a fact)
MLFLOW_REFERENCES = ("expected_facts", "expected_response", "expected_output", "reference", "ground_truth")


MLFLOW_KINDS = {"CHAT_MODEL": "LLM"}


def mlflow_span(raw: Mapping[str, Any], where: int | str, trace_id: str | None, span_id: str | None,
                 parent_id: str | None, name: str, events: list | None = None) -> Span:
    """An MLflow span (its attributes JSON-encoded in a trace's JSON, plain values in OTLP): ``mlflow.spanType``,
    a retriever's ``mlflow.spanInputs`` (the query) and ``mlflow.spanOutputs`` (documents), an LLM's answer."""
    attrs = {k: decoded(v) for k, v in raw.items()}
    kind = str(attrs.get("mlflow.spanType") or "").upper()
    kind = MLFLOW_KINDS.get(kind, kind)
    inputs, outputs = attrs.pop("mlflow.spanInputs", None), attrs.pop("mlflow.spanOutputs", None)
    span = Span(where, "mlflow", ident(attrs.get("mlflow.traceRequestId")) or trace_id, span_id, parent_id, name, kind,
                flatten(attrs), list(events or []))
    if kind == RETRIEVER:
        span.query = query_of(inputs)
        span.documents = documents_of(outputs, span) or []
    elif kind == "LLM":
        span.answer = answer_in(outputs)
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


def read_trace(obj: Mapping[str, Any], where: int | str) -> Iterator[Span]:
    """The spans of an MLflow trace (``{"info", "data": {"spans"}}``), each given the trace's id and reference."""
    info = obj.get("info") if isinstance(obj.get("info"), Mapping) else {}
    tid = ident(info.get("trace_id") or info.get("request_id"))
    refs = mlflow_reference(info.get("assessments"))
    for i, sp in enumerate(list_of(obj.get("data") or {}, ("spans",), "spans"), 1):
        here = f"{where}, span {i}" if where else f"span {i}"
        attrs = sp.get("attributes") or {}
        try:
            raw = otlp_attributes(attrs) if isinstance(attrs, list) else attrs
            if not isinstance(raw, Mapping):
                raise ValueError(f"'attributes' must be an object, got {type(attrs).__name__}")
            span = mlflow_span(raw, here, ident(sp.get("trace_id")), ident(sp.get("span_id")), ident(sp.get("parent_span_id")),
                                str(sp.get("name", "")))
        except ValueError as err:
            raise FormatError(str(err), here) from None
        span.trace_id = tid or span.trace_id
        span.references = refs or None
        yield span


def search_traces_row(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A row of ``mlflow.search_traces()``'s DataFrame as an MLflow trace: its ``trace`` column (the trace's JSON),
    else its ``spans`` and ``assessments`` columns."""
    trace = decoded(obj.get("trace"))
    if isinstance(trace, Mapping):
        return trace
    return {"info": {"trace_id": obj.get("trace_id"), "assessments": obj.get("assessments") or []},
            "data": {"spans": obj.get("spans") or []}}


def is_trace(obj: Mapping[str, Any]) -> bool:
    return isinstance(obj.get("info"), Mapping) and isinstance(obj.get("data"), Mapping) and "spans" in obj["data"]


def is_search_traces_row(obj: Mapping[str, Any]) -> bool:
    return "trace_id" in obj and ("trace" in obj or "spans" in obj and "assessments" in obj) and "run_type" not in obj


def is_otlp_dialect(raw: Mapping[str, Any]) -> bool:
    """An OTLP span's attributes written by MLflow (``Span.to_otel_proto()``)."""
    return "mlflow.spanType" in raw


FORMATS = (TraceFormat("mlflow trace", is_trace, read_trace),
           TraceFormat("mlflow search_traces row", is_search_traces_row, lambda obj, where: read_trace(search_traces_row(obj), where)))
