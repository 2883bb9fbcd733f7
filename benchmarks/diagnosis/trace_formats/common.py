"""What every trace format shares: :class:`Span`, one span in one shape whatever wrote it; the read report; the
value helpers (OTLP ``AnyValue``, JSON-encoded attributes, list cells, documents, queries, answers); and
:class:`TraceFormat`, a (detect, read) pair each family module registers (:mod:`benchmarks.diagnosis.trace_formats`)."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from benchmarks.diagnosis.records import reference_pieces

RETRIEVER = "RETRIEVER"


#: attribute names a reference is read from (on the retriever span, else any span of its trace)
REFERENCE_KEYS = ("reference", "expected_output", "metadata.reference", "metadata.expected_output",
                  "traceloop.association.properties.reference")


#: attribute names of the query on a span (OpenInference, OpenLLMetry)
QUERY_KEYS = ("input.value", "db.query.text", "db.vector.query.text", "gen_ai.prompt.0.content")


#: ``gen_ai.operation.name`` values of a model call (OpenTelemetry GenAI semantic conventions)
GENAI_LLM_OPERATIONS = ("chat", "text_completion", "generate_content")


VECTOR_DB_EVENT = "db.query.result"


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
                    meta = json_object(ev.get("db.query.result.metadata"))  # a JSON string flatten() already opened:
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


def json_object(value: Any) -> dict[str, Any]:
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
    meta = json_object(doc.get("metadata"))
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


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def ident(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


_TEXT_KEYS = ("page_content", "pageContent", "content", "text")


def documents_of(items: Any, span: "Span | None" = None) -> list[dict[str, Any]] | None:
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


def answer_in(value: Any) -> str | None:
    """An answer from an LLM output: a string, ``{"content"}``, ``{"output"|"answer"|"text"}``, a chat message,
    or LangChain ``generations`` (``[[{"text"}]]`` or ``[[{"message": {"content"}}]]``)."""
    if isinstance(value, str):
        return text_or_none(value)
    if isinstance(value, list) and value:
        return answer_in(value[0])
    if isinstance(value, dict):
        for key in ("content", "answer", "output", "text", "result"):
            got = answer_in(value.get(key)) if key in value else None
            if got:
                return got
        if "generations" in value:
            return answer_in(value["generations"])
        if "choices" in value:  # an OpenAI-style completion (MLflow's CHAT_MODEL outputs)
            return answer_in(value["choices"])
        if isinstance(value.get("message"), dict):
            msg = value["message"]
            return answer_in(msg.get("content") or (msg.get("kwargs") or {}).get("content"))
    return None


def list_of(node: Any, keys: tuple[str, ...], what: str) -> list[Any]:
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
    return value if parsed is value else answer_in(parsed)


@dataclass(frozen=True)
class TraceFormat:
    """One format a family module reads: ``detect(record)`` says whether a record is written in it (formats never
    claim the same record: ``tests/test_trace_fixtures.py`` checks it on every fixture), ``read(record, where)`` gives
    its spans (ValueError or :class:`FormatError` for a record of this format whose structure is broken)."""

    name: str
    detect: Callable[[Mapping[str, Any]], bool]
    read: Callable[[Mapping[str, Any], "int | str"], Iterator[Span]]
