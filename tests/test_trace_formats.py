"""Trace files as tracing tools write them (#21). Each fixture is written from the format's specification or the
exporter's source, cited above it, with one RAG trace: a root chain span (carrying the reference), a retriever
span with two documents and an LLM span with the answer. Every file must yield its retriever span, with the
query, the documents in rank order, the answer of the LLM span and the reference; the other spans are counted
by kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.diagnosis.traces import audit_traces, read_traces
from benchmarks.errors import DataError

QUERY = "How many days of annual leave do employees get?"
DOCS = [("policies/leave.md", "Employees get 25 days of annual leave per calendar year.", 0.82),
        ("policies/travel.md", "Book flights through the travel portal.", 0.41)]
ANSWER = "Employees get 25 days of annual leave."
REFERENCE = "Employees get 25 days of annual leave per calendar year."
TRACE_ID, ROOT, RETRIEVER, LLM = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "aaa19b7ec3c1b175", "bbb19b7ec3c1b176"


def write(path: Path, records) -> Path:
    if isinstance(records, dict):
        path.write_text(json.dumps(records), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def check(traces, report, *, spans=3, answer=ANSWER, reference=(REFERENCE,), ids=True):
    (t,) = traces
    assert t.query == QUERY
    assert [c["text"] for c in t.contexts] == [d[1] for d in DOCS]
    if ids:
        assert [c["doc_id"] for c in t.contexts] == [d[0] for d in DOCS]
    assert [c["rank"] for c in t.contexts] == [1, 2]
    assert t.answer == answer
    assert t.reference == list(reference)
    assert report.spans == spans and report.retriever_spans == 1
    assert sum(report.skipped.values()) == spans - 1


# ------------------------------------------------------------------------------------------ OTLP JSON
# opentelemetry-proto, opentelemetry/proto/collector/trace/v1/trace_service.proto (ExportTraceServiceRequest) and
# common/v1/common.proto (AnyValue: string_value, bool_value, int_value, double_value, array_value, kvlist_value),
# in the protobuf JSON mapping: lowerCamelCase names, 64-bit integers as strings, ids as hex (the OTLP/HTTP JSON
# encoding, opentelemetry-proto/docs/specification.md). OpenInference attributes: openinference-semantic-conventions
# (openinference.span.kind, input.value, retrieval.documents.<i>.document.{id,content,score}, output.value, metadata
# as a JSON string).
def _kv(key, value, camel=True):
    def any_value(v):
        if isinstance(v, bool):
            return {"boolValue" if camel else "bool_value": v}
        if isinstance(v, int):
            return {"intValue" if camel else "int_value": str(v)}
        if isinstance(v, float):
            return {"doubleValue" if camel else "double_value": v}
        if isinstance(v, list):
            return {"arrayValue" if camel else "array_value": {"values": [any_value(x) for x in v]}}
        if isinstance(v, dict):
            return {"kvlistValue" if camel else "kvlist_value": {"values": [_kv(k, x, camel) for k, x in v.items()]}}
        return {"stringValue" if camel else "string_value": v}
    return {"key": key, "value": any_value(value)}


def otlp_spans(camel=True):
    ids = ("traceId", "spanId", "parentSpanId") if camel else ("trace_id", "span_id", "parent_span_id")
    retriever = [("openinference.span.kind", "RETRIEVER"), ("input.value", QUERY)]
    for i, (d, text, score) in enumerate(DOCS):
        retriever += [(f"retrieval.documents.{i}.document.id", d), (f"retrieval.documents.{i}.document.content", text),
                      (f"retrieval.documents.{i}.document.score", score)]
    return [
        {ids[0]: TRACE_ID, ids[1]: ROOT, "name": "query", "kind": "SPAN_KIND_INTERNAL",
         "attributes": [_kv(k, v, camel) for k, v in [("openinference.span.kind", "CHAIN"), ("input.value", QUERY),
                                                        ("metadata", json.dumps({"reference": REFERENCE})),
                                                        ("tag.tags", ["prod", "v2"]), ("llm.token_count.total", 412),
                                                        ("session", {"id": "s-1", "turn": 3})]]},
        {ids[0]: TRACE_ID, ids[1]: RETRIEVER, ids[2]: ROOT, "name": "retrieve",
         "attributes": [_kv(k, v, camel) for k, v in retriever]},
        {ids[0]: TRACE_ID, ids[1]: LLM, ids[2]: ROOT, "name": "llm",
         "attributes": [_kv(k, v, camel) for k, v in [("openinference.span.kind", "LLM"), ("input.value", "prompt"),
                                                        ("output.value", ANSWER)]]},
    ]


def test_otlp_json_export_camel_case(tmp_path):
    export = {"resourceSpans": [{"resource": {"attributes": [_kv("service.name", "rag")]},
                                 "scopeSpans": [{"scope": {"name": "openinference.instrumentation.llama_index"},
                                                 "spans": otlp_spans(camel=True)}]}]}
    traces, report = read_traces(write(tmp_path / "export.json", export))
    check(traces, report)
    assert traces[0].trace_id == TRACE_ID and traces[0].span_id == RETRIEVER and traces[0].contexts[0]["score"] == 0.82
    assert report.skipped == {"CHAIN": 1, "LLM": 1} and report.formats == {"otlp": 3}


# Phoenix's "OTLP JSON" download and its REST API (src/phoenix/server/api/routers/v1/spans.py: span_search_otlpv1
# returns {"next_cursor", "data": [OtlpSpan]} with the proto field names: trace_id, span_id, parent_span_id,
# string_value, double_value, int_value, array_value; attributes flattened with recurse_on_sequence, so
# retrieval.documents.<i>.document.* keys).
def test_otlp_json_export_field_names_as_phoenix_downloads_it(tmp_path):
    export = {"resource_spans": [{"scope_spans": [{"spans": otlp_spans(camel=False)}]}]}
    traces, report = read_traces(write(tmp_path / "phoenix-otlp.json", export))
    check(traces, report)
    api = {"next_cursor": None, "data": otlp_spans(camel=False)}
    traces, report = read_traces(write(tmp_path / "otlpv1.json", api))
    check(traces, report)
    lines = otlp_spans(camel=False)  # one OTLP span per line
    traces, report = read_traces(write(tmp_path / "spans.jsonl", lines))
    check(traces, report)


# Phoenix REST spans (src/phoenix/server/api/routers/v1/spans.py, class Span: name, context {trace_id, span_id},
# span_kind, parent_id, start_time, end_time, status_code, attributes (a dict), events), one per line as a
# user saves the API's "data" list.
def phoenix_rest_spans(documents_as_json_string=False):
    docs = [{"document.id": d, "document.content": t, "document.score": s} for d, t, s in DOCS]
    base = {"start_time": "2026-11-02T10:00:00Z", "end_time": "2026-11-02T10:00:01Z", "status_code": "OK", "events": []}
    return [
        {**base, "name": "query", "context": {"trace_id": TRACE_ID, "span_id": ROOT}, "span_kind": "CHAIN", "parent_id": None,
         "attributes": {"input.value": QUERY, "metadata": json.dumps({"reference": REFERENCE})}},
        {**base, "name": "retrieve", "context": {"trace_id": TRACE_ID, "span_id": RETRIEVER}, "span_kind": "RETRIEVER",
         "parent_id": ROOT, "attributes": {"input.value": QUERY,
                                           "retrieval.documents": json.dumps(docs) if documents_as_json_string else docs}},
        {**base, "name": "llm", "context": {"trace_id": TRACE_ID, "span_id": LLM}, "span_kind": "LLM", "parent_id": ROOT,
         "attributes": {"output.value": ANSWER, "llm.model_name": "gpt-4o"}},
    ]


@pytest.mark.parametrize("as_json_string", [False, True])
def test_phoenix_rest_spans_one_per_line(tmp_path, as_json_string):
    traces, report = read_traces(write(tmp_path / "spans.jsonl", phoenix_rest_spans(as_json_string)))
    check(traces, report)
    assert report.formats == {"phoenix": 3}
    traces, _ = read_traces(write(tmp_path / "api.json", {"data": phoenix_rest_spans(as_json_string), "next_cursor": None}))
    check(traces, report)


# Phoenix's spans dataframe (phoenix.client Client().spans.get_spans_dataframe / px.Client().get_spans_dataframe):
# columns name, span_kind, parent_id, context.span_id, context.trace_id, attributes.input.value,
# attributes.retrieval.documents (a list of {"document.content", "document.id", "document.score"}),
# attributes.output.value; written with DataFrame.to_json(orient="records", lines=True) or to_parquet.
def dataframe_rows():
    docs = [{"document.id": d, "document.content": t, "document.score": s} for d, t, s in DOCS]
    return [
        {"name": "query", "span_kind": "CHAIN", "parent_id": None, "context.span_id": ROOT, "context.trace_id": TRACE_ID,
         "attributes.input.value": QUERY, "attributes.metadata": {"reference": REFERENCE}},
        {"name": "retrieve", "span_kind": "RETRIEVER", "parent_id": ROOT, "context.span_id": RETRIEVER,
         "context.trace_id": TRACE_ID, "attributes.input.value": QUERY, "attributes.retrieval.documents": docs},
        {"name": "llm", "span_kind": "LLM", "parent_id": ROOT, "context.span_id": LLM, "context.trace_id": TRACE_ID,
         "attributes.output.value": ANSWER},
    ]


def test_phoenix_spans_dataframe_as_json_lines(tmp_path):
    traces, report = read_traces(write(tmp_path / "df.jsonl", dataframe_rows()))
    check(traces, report)
    rows = dataframe_rows()
    rows[1]["attributes.retrieval.documents"] = json.dumps(rows[1]["attributes.retrieval.documents"])
    traces, report = read_traces(write(tmp_path / "df-str.jsonl", rows))
    check(traces, report)


def test_phoenix_spans_dataframe_as_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = dataframe_rows()
    for r in rows:  # a dataframe has every column on every row
        r["attributes.metadata"] = json.dumps(r.get("attributes.metadata")) if r.get("attributes.metadata") else None
    columns = sorted({k for r in rows for k in r})
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    pq.write_table(table, tmp_path / "spans.parquet")
    traces, report = read_traces(tmp_path / "spans.parquet")
    check(traces, report)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"broken\.parquet: not a readable parquet file"):
        read_traces(tmp_path / "broken.parquet")
    from benchmarks.datasets import limits

    limits.configure({"json_file_mb": 0.001})  # a parquet file is read whole: bounded like a .json file
    try:
        with pytest.raises(DataError, match=r"spans\.parquet: a \.parquet file larger than .*limits\.json_file_mb"):
            read_traces(tmp_path / "spans.parquet")
    finally:
        limits.configure(None)


# ------------------------------------------------------------------------------------------ LangSmith
# LangSmith runs (langsmith schemas RunBase: id, name, run_type in llm|chain|tool|retriever|..., inputs, outputs,
# extra.metadata, trace_id, parent_run_id); a retriever run returns documents with page_content, type "Document"
# and metadata (docs.langchain.com/langsmith/log-retriever-trace); an llm run's outputs are LangChain
# generations ([[{"text": ...}]]).
def test_langsmith_run_export(tmp_path):
    runs = [
        {"id": ROOT, "name": "RetrievalQA", "run_type": "chain", "trace_id": ROOT, "parent_run_id": None,
         "inputs": {"question": QUERY}, "outputs": {"answer": ANSWER}, "extra": {"metadata": {"reference": REFERENCE}}},
        {"id": RETRIEVER, "name": "VectorStoreRetriever", "run_type": "retriever", "trace_id": ROOT, "parent_run_id": ROOT,
         "inputs": {"query": QUERY},
         "outputs": {"documents": [{"page_content": t, "type": "Document", "metadata": {"source": d, "score": s}}
                                   for d, t, s in DOCS]}},
        {"id": LLM, "name": "ChatOpenAI", "run_type": "llm", "trace_id": ROOT, "parent_run_id": ROOT,
         "inputs": {"messages": []}, "outputs": {"generations": [[{"text": ANSWER, "type": "ChatGeneration"}]]}},
    ]
    traces, report = read_traces(write(tmp_path / "runs.jsonl", runs))
    check(traces, report)
    assert traces[0].contexts[0]["score"] == 0.82 and report.formats == {"langsmith": 3}


# ------------------------------------------------------------------------------------------ Langfuse
# Langfuse observations (public API GET /api/public/observations: {"data": [Observation], "meta"}; Observation: id,
# traceId, type (SPAN | GENERATION | EVENT | ... | RETRIEVER), name, input, output, metadata, parentObservationId),
# as the LangChain callback handler logs a retriever: input the query, output the documents.
def test_langfuse_observations(tmp_path):
    observations = [
        {"id": ROOT, "traceId": TRACE_ID, "type": "SPAN", "name": "rag", "input": {"question": QUERY},
         "output": {"answer": ANSWER}, "metadata": {"reference": REFERENCE}, "parentObservationId": None},
        {"id": RETRIEVER, "traceId": TRACE_ID, "type": "RETRIEVER", "name": "retriever", "input": QUERY,
         "output": [{"pageContent": t, "metadata": {"id": d, "score": s}} for d, t, s in DOCS],
         "parentObservationId": ROOT},
        {"id": LLM, "traceId": TRACE_ID, "type": "GENERATION", "name": "ChatOpenAI", "input": [{"role": "user", "content": "..."}],
         "output": {"role": "assistant", "content": ANSWER}, "parentObservationId": ROOT},
    ]
    traces, report = read_traces(write(tmp_path / "observations.json", {"data": observations, "meta": {"page": 1}}))
    check(traces, report)
    # an older export: a plain SPAN whose output is the documents is a retriever too
    observations[1]["type"] = "SPAN"
    observations[1]["input"] = {"query": QUERY}
    traces, report = read_traces(write(tmp_path / "obs.jsonl", observations))
    check(traces, report)


# ------------------------------------------------------------------------------------------ OpenLLMetry
# OpenLLMetry / Traceloop vector-DB spans (traceloop/openllmetry, semantic-conventions-ai: Events.DB_QUERY_RESULT =
# "db.query.result" with db.query.result.{id,score,distance,metadata,document}; the chromadb instrumentation's
# "chroma.query" span with db.system = chroma); the query is the input of the workflow/task span around it
# (traceloop.entity.input, JSON of the call's args/kwargs).
def test_openllmetry_vector_db_span(tmp_path):
    def event(d, text, distance):
        return {"name": "db.query.result", "timeUnixNano": "1700000000000000000",
                "attributes": [_kv("db.query.result.id", d), _kv("db.query.result.document", text),
                               _kv("db.query.result.distance", distance),
                               _kv("db.query.result.metadata", json.dumps({"source": d}))]}
    spans = [
        {"traceId": TRACE_ID, "spanId": ROOT, "name": "rag.workflow",
         "attributes": [_kv("traceloop.span.kind", "workflow"),
                        _kv("traceloop.entity.input", json.dumps({"args": [QUERY], "kwargs": {}})),
                        _kv("metadata.reference", REFERENCE)]},
        {"traceId": TRACE_ID, "spanId": RETRIEVER, "parentSpanId": ROOT, "name": "chroma.query",
         "attributes": [_kv("db.system", "chroma"), _kv("db.operation", "query"), _kv("db.chroma.query.n_results", 2)],
         "events": [event(d, t, round(1 - s, 2)) for d, t, s in DOCS]},
        {"traceId": TRACE_ID, "spanId": LLM, "parentSpanId": ROOT, "name": "openai.chat",
         "attributes": [_kv("traceloop.span.kind", "llm"), _kv("gen_ai.completion.0.content", ANSWER)]},
    ]
    traces, report = read_traces(write(tmp_path / "openllmetry.json", {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    check(traces, report)
    assert traces[0].contexts[0]["score"] > traces[0].contexts[1]["score"]  # a smaller distance ranks first


# ------------------------------------------------------------------------------------------ reports
def test_a_file_with_no_retriever_span_says_what_it_saw_and_what_it_expected(tmp_path):
    spans = [s for s in phoenix_rest_spans() if s["span_kind"] != "RETRIEVER"]
    with pytest.raises(DataError, match=r"no traces: 2 records \(phoenix 2\): 2 spans, 0 retriever spans; skipped by kind: "
                                        r"CHAIN 1, LLM 1; attribute keys seen: .*input\.value.*; expected .*LangSmith runs"):
        read_traces(write(tmp_path / "llm-only.jsonl", spans))
    with pytest.raises(DataError, match=r"x\.jsonl:1: neither a trace .*fields: colour, size; expected a trace record"):
        read_traces(write(tmp_path / "x.jsonl", [{"colour": "red", "size": 3}]))


# ------------------------------------------------------------------------------------------ judging spans
def test_spans_are_judged_with_their_own_reference_or_a_references_file(tmp_path):
    spans = phoenix_rest_spans()
    spans[0]["attributes"]["metadata"] = json.dumps({"reference": "Unused leave expires on 31 March."})
    path = write(tmp_path / "spans.jsonl", spans)
    result = audit_traces(path)
    (row,) = result["rows"]
    assert row["judged"] is True and row["reached"] is False and result["verdicts"][0]["verdict"] == "other"
    refs = write(tmp_path / "refs.jsonl", [{"trace_id": TRACE_ID, "reference": REFERENCE},
                                           {"query": "an unknown question", "reference": "x"}])
    result = audit_traces(path, references=refs)
    assert result["rows"][0]["reached"] is True and result["verdicts"] == []
    assert result["references"] == {"references": 2, "traces_given": 1, "unmatched": 1}
    by_query = tmp_path / "refs.csv"
    by_query.write_text(f"query,reference\n\"{QUERY.upper()}  \",\"Unused leave expires on 31 March.\"\n", encoding="utf-8")
    result = audit_traces(path, references=by_query)  # joined on the normalised query text
    assert result["rows"][0]["reached"] is False and result["references"]["traces_given"] == 1
    with pytest.raises(DataError, match=r"bad\.jsonl:1: a reference needs span_id, trace_id or query"):
        audit_traces(path, references=write(tmp_path / "bad.jsonl", [{"reference": "x"}]))


@pytest.mark.parametrize("answer, fires, pieces", [
    (ANSWER, False, []),                                                       # every claim is in the contexts
    ("Employees get 30 days of annual leave.", True, ["'30'"]),                 # a number the contexts do not hold
    ("Ask Priya Raman in Payroll about annual leave.", True, ["'Priya Raman'", "'Payroll'"]),  # names nobody retrieved
    ("Leave requests go through form HR-7 by email.", True, ["'HR-7'"]),       # an identifier
])
def test_answer_unsupported_on_cases_with_known_truth(tmp_path, answer, fires, pieces):
    spans = phoenix_rest_spans()
    spans[2]["attributes"]["output.value"] = answer
    result = audit_traces(write(tmp_path / "spans.jsonl", spans))
    got = [s for s in result["signals"][RETRIEVER] if s["signal"] == "answer_unsupported"]
    assert bool(got) == fires, got
    for p in pieces:
        assert p in got[0]["evidence"]
    assert "answer_unsupported" not in result["not_computed"]


def test_signals_that_cannot_be_computed_are_shown_as_not_computed(tmp_path, capsys):
    from benchmarks.audit import main

    spans = [s for s in phoenix_rest_spans() if s["span_kind"] != "LLM"]
    path = write(tmp_path / "spans.jsonl", spans)
    assert main(["--traces", str(path), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    for name in ("retriever_disagreement", "missing_identifier", "cut_unit", "answer_unsupported"):
        assert f"| {name} | not computed |" in text, name
    assert "| low_margin | 0 | 0% |" in text  # computed (two scores per trace), and it did not fire
    assert "not computed" in (tmp_path / "report.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ cost of --corpus
@pytest.mark.slow
def test_the_companion_plan_says_what_dense_costs_and_notices_the_cache(tmp_path):
    from benchmarks.diagnosis.companions import companion_run, plan
    from chunkers.types import Chunk, Query

    chunks = [Chunk(f"d{i}#0", f"d{i}", "", f"passage number {i} about leave", 0, 30) for i in range(30)]
    tree = {"retriever": {"_target_": "retrievers.dense.DenseRetriever",
                          "encoder": {"_target_": "retrievers.encoders.StaticModelEncoder", "path": None},
                          "cache_dir": str(tmp_path / "cache"), "cache_mode": "use"}}
    first = plan(chunks, 30, {"dense": tree, "bm25": {}})
    assert "companion runs over 30 chunker=sections chunks of 30 documents: BM25 and versions=filter (about 1 s), " \
           "dense (30 passages to encode, about 1 min on a CPU; --companions bm25 skips it)" == first
    companion_run(tree, chunks, [Query("q", "leave")], top_k=5, groups=())  # encodes once, into the cache
    assert plan(chunks, 30, {"dense": tree}).endswith("dense (embeddings cached)")
    assert plan(chunks, 30, {}).startswith("no companion runs (--companions none)")


def test_companions_bm25_skips_dense(tmp_path, capsys):
    from benchmarks.audit import main
    from benchmarks.paths import DATA_DIR

    handbook = DATA_DIR / "handbook"
    assert main(["--traces", str(handbook / "traces.jsonl"), "--corpus", str(handbook), "--companions", "bm25",
                 "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "companion runs over" in err and "BM25 and versions=filter" in err and "dense (" not in err
    text = (tmp_path / "a.md").read_text(encoding="utf-8")
    assert "| retriever_disagreement | not computed |" in text and "dense #" not in text
