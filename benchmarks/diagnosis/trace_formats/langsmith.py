"""LangSmith runs (``run_type``, ``inputs``, ``outputs``; a retriever run's ``outputs.documents`` hold
``page_content`` and ``metadata``; ``trace_id``, ``parent_run_id``; the reference in ``extra.metadata``)."""

from __future__ import annotations

from typing import Any, Mapping

from benchmarks.diagnosis.trace_formats.common import (RETRIEVER, Span, TraceFormat, answer_in, documents_of, flatten,
                                                       ident, query_of)

def read_run(obj: Mapping[str, Any], where: int | str) -> Span:
    run_type = str(obj.get("run_type", "")).upper()
    meta = ((obj.get("extra") or {}).get("metadata") or {}) if isinstance(obj.get("extra"), dict) else {}
    attrs = flatten({"metadata": meta}) if meta else {}
    span = Span(where, "langsmith", ident(obj.get("trace_id")), ident(obj.get("id")), ident(obj.get("parent_run_id")),
                str(obj.get("name", "")), run_type, attrs)
    inputs, outputs = obj.get("inputs") or {}, obj.get("outputs") or {}
    if run_type == RETRIEVER:
        span.query = query_of(inputs)
        span.documents = documents_of(outputs, span) or []
    elif run_type in ("LLM", "CHAIN"):
        span.answer = answer_in(outputs)
    return span


def is_run(obj: Mapping[str, Any]) -> bool:
    return "run_type" in obj and ("inputs" in obj or "outputs" in obj)


FORMATS = (TraceFormat("langsmith run", is_run, lambda obj, where: iter([read_run(obj, where)])),)
