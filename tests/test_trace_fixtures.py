"""#32: traces as each tool's own code writes them, read, attributed to the right document and judged right.

Every file under ``tests/fixtures/traces/<tool>/`` was produced by that tool's SDK running the offline app of
``tests/fixtures/traces/scenario.py`` (the ``make_<tool>.py`` beside it; versions in each folder's ``VERSIONS``).
Each file must yield every retriever span it holds with its query, passages in rank order, answer and reference
(where the tool recorded one), and the verdicts over the scenario's corpus must be the scenario's.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from benchmarks.audit import main as audit_main
from benchmarks.diagnosis.trace_formats import dataset_record, list_cell
from benchmarks.diagnosis.traces import audit_traces, read_traces

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "traces"
CORPUS = FIXTURES / "corpus"
_spec = importlib.util.spec_from_file_location("trace_scenario", FIXTURES / "scenario.py")
scenario = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenario)
BY_QUERY = {q["question"]: q for q in scenario.QUESTIONS}

# file -> (traces it holds, whether the tool recorded the reference in it, whether passages carry a source or id)
FILES = {
    "mlflow/trace_get.json": (1, True, True),
    "mlflow/traces.jsonl": (7, True, True),
    "mlflow/search_traces.jsonl": (7, True, True),
    "mlflow/otlp.json": (7, False, True),  # Span.to_otel_proto() carries no assessments
    "mlflow/traces_manual.jsonl": (7, True, True),
    "openinference/otlp.json": (7, True, True),
    "openinference/otlp_fields.json": (7, True, True),
    "langfuse/otlp.json": (7, True, True),
    "langfuse/api_observations.json": (7, True, True),  # the SDK's API models' serialisation of the same spans
    "langsmith/runs.jsonl": (7, True, True),
    "traceloop/otlp.json": (7, True, True),
    "ragas/evaluation_dataset.jsonl": (7, True, False),
    "ragas/evaluation_dataset.csv": (7, True, False),
    "ragas/legacy.jsonl": (7, True, False),
    "ragas/legacy.csv": (7, True, False),
    "deepeval/dataset.json": (7, True, False),
    "deepeval/dataset.jsonl": (7, True, False),
    "deepeval/dataset.csv": (7, True, False),
}


def test_every_fixture_was_made_by_its_tool_and_says_with_which_version():
    folders = {name.split("/")[0] for name in FILES}
    for folder in folders:
        versions = (FIXTURES / folder / "VERSIONS").read_text().split()
        assert versions and (FIXTURES / f"make_{folder}.py").is_file(), folder
    assert {p.parent.name for p in FIXTURES.glob("*/*") if p.parent.name != "corpus" and p.is_file()} == folders


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_file_yields_every_retriever_span_with_answer_and_reference(name):
    n, has_reference, _ = FILES[name]
    traces, report = read_traces(FIXTURES / name)
    assert len(traces) == n
    assert sorted(t.query for t in traces) == sorted(t.query for t in traces if t.query in BY_QUERY)
    for t in traces:
        q = BY_QUERY[t.query]
        assert [c["text"] for c in t.contexts] == [h["text"] for h in scenario.hits(t.query)], name
        assert [c["rank"] for c in t.contexts] == list(range(1, len(t.contexts) + 1))
        assert t.answer == q["answer"], (name, t.answer)  # the generation's text, never LangChain's LLMResult JSON
        assert t.reference == ([q["reference"]] if has_reference else []), name
    if report.spans:
        assert report.retriever_spans == n


@pytest.mark.parametrize("name", sorted(FILES))
def test_verdicts_over_the_scenario_corpus(name):
    """q-meal's passage is from the superseded 2024 policy: stale_version. q-class retrieved a sentence both
    versions hold, recorded as the current policy's: never stale_version (it was, when a passage went to the
    first document holding its text). The rest as the scenario says."""
    _, has_reference, sourced = FILES[name]
    if not has_reference:
        pytest.skip("the tool recorded no reference in this file (--references joins one)")
    result = audit_traces(FIXTURES / name, corpus_dir=CORPUS, companions=())
    got = {r["query"]: r for r in result["rows"]}
    verdict = {BY_QUERY[q]["id"]: r.get("verdict") for q, r in got.items()}
    if name == "mlflow/trace_get.json":
        assert verdict == {"q-meal": "stale_version"}
        return
    assert verdict["q-meal"] == "stale_version"
    assert verdict["q-class"] != "stale_version"
    assert verdict["q-vpn"] == "exact_term"
    assert verdict["q-frais"] == "wrong_passage"
    assert {q for q, v in verdict.items() if v is None} == {"q-leave", "q-urlaub", "q-remote"}
    counts = result["attribution"]
    if sourced:  # every passage carries its loader's source (or a corpus id): attributed by it, none by text
        assert counts["id"] + counts["source"] == 12 and counts["text"] == counts["ambiguous"] == counts["unmapped"] == 0
        assert verdict["q-class"] == "wrong_passage"
        (ctx,) = [r for r in result["rows"] if BY_QUERY[r["query"]]["id"] == "q-class"]
        assert ctx["docs"][0]["doc_id"] == "policies/travel.md" and ctx["gold_in_top_k"] == ["policies/travel.md"]
    else:  # text only: the shared sentence is in both versions, so it is ambiguous, and no verdict rests on which
        assert counts["ambiguous"] == 2 and counts["text"] == 10 and counts["unmapped"] == 0
        row = next(r for r in result["rows"] if BY_QUERY[r["query"]]["id"] == "q-class")
        assert row["docs"][0]["attributed"] == "ambiguous"
        assert row["docs"][0]["candidates"] == ["policies/archive/travel-2024.md", "policies/travel.md"]
        assert "which no passage comes from" not in row["evidence"]


def test_a_passage_is_never_given_to_the_first_document_holding_its_text():
    """The shared sentence recorded as the current policy's maps to it, and where nothing records it, it is said to
    be ambiguous — in both cases the page's "gold in the top k" agrees with the passages."""
    result = audit_traces(FIXTURES / "langsmith/runs.jsonl", corpus_dir=CORPUS, companions=())
    meal = next(r for r in result["rows"] if BY_QUERY[r["query"]]["id"] == "q-meal")
    assert [(h["doc_id"], h["attributed"]) for h in meal["docs"]] == [
        ("policies/archive/travel-2024.md", "source"), ("policies/travel.md", "source")]
    assert meal["gold_docs"] == ["policies/travel.md"]  # the reference's current holder
    assert meal["gold_in_top_k"] == ["policies/travel.md"]


def test_the_audit_summary_counts_passages_by_route(capsys):
    assert audit_main(["--traces", str(FIXTURES / "ragas/evaluation_dataset.jsonl"), "--corpus", str(CORPUS),
                       "--companions", "none"]) == 0
    out = capsys.readouterr().out
    assert "Passages attributed to a corpus document: 0 by id, 0 by recorded source, 10 by text of 12; 2 ambiguous" in out
    assert "0 unmapped" in out


# ------------------------------------------------------------------------------------------ list cells
def test_list_cells_as_dataset_files_hold_them():
    assert list_cell('["a", "b"]') == ["a", "b"]
    assert list_cell(repr(["it's", 'b, c', "\\d"])) == ["it's", "b, c", "\\d"]  # what pandas writes for a list
    assert list_cell("['a'\n 'b c']") == ["a", "b c"]  # numpy's printed array: no commas, never "ab c"
    assert list_cell("a|b", "|") == ["a", "b"] and list_cell("a|b") == ["a|b"]
    assert list_cell("['a', 1]") is None and list_cell("[__import__('os')]") is None
    assert list_cell("") == [] and list_cell(None) == []


def test_a_dataset_row_with_passages_that_are_not_text_names_the_field(tmp_path):
    bad = tmp_path / "ragas.jsonl"
    bad.write_text(json.dumps({"user_input": "q?", "retrieved_contexts": "[1, 2]", "response": "a"}) + "\n")
    from benchmarks.errors import DataError
    with pytest.raises(DataError, match=r"ragas.jsonl:1: field 'retrieved_contexts' must be a list of passages"):
        read_traces(bad)
    assert dataset_record({"question": "q", "contexts": ["x"], "ground_truths": ["g1", "g2"]})["reference"] == ["g1", "g2"]


# ------------------------------------------------------------------------------------------ property
from hypothesis import given, settings, strategies as st  # noqa: E402

from chunkers.types import Document  # noqa: E402
from benchmarks.diagnosis.companions import CorpusView  # noqa: E402
from benchmarks.diagnosis.matching import Matcher  # noqa: E402
from benchmarks.diagnosis.records import Trace  # noqa: E402
from benchmarks.diagnosis.traces import judge  # noqa: E402

TOPICS = ("alpha", "bravo", "charlie", "delta")


def versioned_corpus(n: int) -> dict[str, Document]:
    """Per topic a current document and the superseded version it replaced, sharing their first sentence."""
    docs = {}
    for t in TOPICS[:n]:
        shared = f"The {t} rule applies to every team in the company without exception."
        docs[f"kb/{t}.md"] = Document(f"kb/{t}.md", t, f"{shared} The current {t} limit is {len(t)}0 units per month.",
                                      {"version": 2})
        docs[f"kb/old/{t}.md"] = Document(f"kb/old/{t}.md", t, f"{shared} The former {t} limit was {len(t)}5 units per week.",
                                          {"version": 1, "superseded_by": f"kb/{t}.md"})
    return docs


def recorded(doc: str, style: str) -> dict:
    return {"none": {}, "prefix": {"source": f"docs/{doc}"}, "abs": {"source": f"/srv/app/{doc}"},
            "file": {"source": f"file:///srv/app/{doc}"}, "https": {"doc_uri": f"https://wiki.example.org/x/{doc}?v=3#s"},
            "name": {"source": doc.rsplit("/", 1)[-1]}, "windows": {"file_path": "C:\\app\\" + doc.replace("/", "\\")}}[style]


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 4), data=st.data())
def test_no_stale_verdict_or_missing_gold_that_the_passages_contradict(n, data):
    docs = versioned_corpus(n)
    view = CorpusView(docs, {}, {})
    ids = sorted(docs)
    sentences = {d: [s.strip() + "." for s in docs[d].text.split(".") if s.strip()] for d in ids}
    picks = data.draw(st.lists(st.tuples(st.sampled_from(ids), st.integers(0, 1),
                                         st.sampled_from(["none", "prefix", "abs", "file", "https", "name", "windows"])),
                               min_size=1, max_size=4))
    ref_doc, ref_i = data.draw(st.sampled_from(ids)), data.draw(st.integers(0, 1))
    contexts = [{"id": f"p{i}", "text": sentences[d][j], "doc_id": None, "score": None, "rank": i + 1,
                 "metadata": recorded(d, style)} for i, (d, j, style) in enumerate(picks)]
    trace = Trace(1, "t", "what is the limit?", contexts, [sentences[ref_doc][ref_i]])
    row = judge(trace, Matcher(), view, 10)
    truth = [d for d, _, _ in picks]
    for h, d in zip(row["docs"], truth):  # a passage's document is its own, or honestly unknown
        assert h["attributed"] in ("ambiguous", "unmapped") or h["doc_id"] == d, (h, d)
    if row.get("verdict") == "stale_version":
        assert any(docs[d].metadata.get("superseded_by") for d in truth), row["evidence"]
    missing = set(row["gold_docs"]) - set(row["gold_in_top_k"]) - set(row["maybe_in_top_k"])
    assert not missing & set(truth), (missing, truth)
    if row.get("verdict") == "other" and "which no passage comes from" in row["evidence"]:
        assert not any(d in row["evidence"] for d in truth)


# ------------------------------------------------------------------------------------------ an MLflow server
import subprocess  # noqa: E402
import sys  # noqa: E402

from conftest import mlflow_server_at  # noqa: E402

from benchmarks.diagnosis.traces import mlflow_records  # noqa: E402
from benchmarks.errors import DataError  # noqa: E402

LOG_TRACES = r'''
import os, sys
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
import mlflow
from mlflow.entities import Document, SpanType
sys.path.insert(0, sys.argv[2])
from scenario import QUESTIONS, hits

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("rag-prod")

@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(query):
    return [Document(page_content=h["text"], metadata={"doc_uri": h["source"]}, id=h["id"]) for h in hits(query)]

@mlflow.trace(span_type=SpanType.LLM)
def generate(question, context):
    return next(q["answer"] for q in QUESTIONS if q["question"] == question)

@mlflow.trace(span_type=SpanType.CHAIN)
def answer(question, env):
    mlflow.update_current_trace(tags={"env": env})
    return generate(question, [d.page_content for d in retrieve(question)])

for i, q in enumerate(QUESTIONS):
    answer(q["question"], "prod" if i < 3 else "dev")
    mlflow.log_expectation(trace_id=mlflow.get_last_active_trace_id(), name="expected_response", value=q["reference"])
'''


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on loopback holding the scenario's 7 traces, logged through MLflow's tracing API
    (``@mlflow.trace``, ``mlflow.log_expectation``), 3 of them tagged ``env=prod``."""
    tmp = tmp_path_factory.mktemp("server")
    with mlflow_server_at(tmp) as uri:
        logged = subprocess.run([sys.executable, "-c", LOG_TRACES, uri, str(FIXTURES)], cwd=tmp, capture_output=True,
                                text=True, timeout=300)
        assert logged.returncode == 0, logged.stderr[-3000:]
        yield uri


@pytest.mark.slow
def test_traces_read_straight_from_a_tracking_server(mlflow_server, tmp_path, capsys):
    queries = tmp_path / "queries.jsonl"
    assert audit_main(["--mlflow-experiment", "rag-prod", "--tracking-uri", mlflow_server, "--corpus", str(CORPUS),
                       "--companions", "none", "--write-queries", str(queries)]) == 0
    out = capsys.readouterr()
    assert "7 traces, corpus" in out.out and "Reference reached the context in 3 of 7 traces" in out.out
    assert "| stale_version |" in out.out and "12 by recorded source" in out.out
    written = [json.loads(line) for line in queries.read_text(encoding="utf-8").splitlines()]
    assert sorted(q["text"] for q in written) == sorted(BY_QUERY)
    meal = next(q for q in written if BY_QUERY[q["text"]]["id"] == "q-meal")
    assert meal["relevant"] == ["policies/travel.md"] and meal["evidence"] == [BY_QUERY[meal["text"]]["reference"]]
    # MLflow's own filter, a page at a time, bounded
    assert audit_main(["--mlflow-experiment", "rag-prod", "--tracking-uri", mlflow_server,
                       "--filter", "tags.env = 'prod'"]) == 0
    assert "(3 traces)" in capsys.readouterr().out
    assert len(list(mlflow_records(mlflow_server, "rag-prod", max_traces=5, page_size=2))) == 5
    with pytest.raises(DataError, match="did you mean 'rag-prod'"):
        list(mlflow_records(mlflow_server, "rag-prd"))


@pytest.mark.slow
def test_written_queries_load_with_dataset_files_and_a_sweep_runs_on_them(mlflow_server, tmp_path):
    """The own-system workflow end to end: traces -> audit -> --write-queries -> rbench -m dataset=files (a sweep of
    the fix the audit suggests, chunker=fixed_64 vs sections) -> both points FINISHED, scored on every query."""
    queries = tmp_path / "queries.jsonl"
    assert audit_main(["--mlflow-experiment", "rag-prod", "--tracking-uri", mlflow_server, "--corpus", str(CORPUS),
                       "--companions", "none", "--write-queries", str(queries)]) == 0
    rbench = str(Path(sys.executable).parent / "rbench")
    out = subprocess.run([rbench, "-m", "dataset=files", f"dataset.path={CORPUS}", f"dataset.queries={queries}",
                          "retriever=bm25", "chunker=fixed_64,sections", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                          f"tracking.artifact_root={tmp_path}/art", f"cache.dir={tmp_path}/cache",
                          f"hydra.sweep.dir={tmp_path}/sweep"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 of 2 points FINISHED" in out.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/m.db")
    runs = client.search_runs([client.get_experiment_by_name("rbench").experiment_id])
    assert len(runs) == 2
    for r in runs:  # every written query scored, its evidence located as a gold span
        assert r.data.metrics["stats/queries_scored"] == 7 and r.data.metrics["stats/evidence_spans"] == 7


def test_the_page_shows_an_ambiguous_passage_and_never_calls_its_document_missing(tmp_path, capsys):
    out = tmp_path / "audit.x"
    assert audit_main(["--traces", str(FIXTURES / "ragas/evaluation_dataset.csv"), "--corpus", str(CORPUS),
                       "--companions", "none", "--out", str(out), "--examples", "10"]) == 0
    page = (tmp_path / "audit.html").read_text(encoding="utf-8")
    assert "in 2 documents: policies/archive/travel-2024.md, policies/travel.md" in page
    case = page.split("Which class may I book")[1].split("class='case'")[0]
    assert "policies/travel.md</b> <span class='t'>no passage is from it" not in case
    assert f"wrote {tmp_path / 'audit.md'}, " in capsys.readouterr().err  # the files it wrote, by their names


# ------------------------------------------------------------------------------------------ partly bad spans
def _jsonl(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


def test_a_partly_bad_span_names_its_line_and_keeps_its_good_documents(tmp_path):
    """#35: a LangSmith run with a null page_content beside a good document, a Phoenix row whose documents JSON was
    cut off, and a nested OpenInference span whose retrieval.documents are plain strings: read, named, not dropped."""
    run = {"id": "r1", "trace_id": "t1", "run_type": "retriever", "name": "Retriever", "inputs": {"query": "annual leave"},
           "outputs": {"documents": [{"page_content": "Employees get 25 days.", "metadata": {"source": "leave.md"}},
                                     {"page_content": None, "metadata": {"source": "x.md"}}]}}
    (t,), report = read_traces(_jsonl(tmp_path / "langsmith.jsonl", run))
    assert [c["text"] for c in t.contexts] == ["Employees get 25 days."] and report.dropped == 1
    assert "line 1: 1 of its documents have no text (left out)" in report.line()
    row = {"context.span_id": "s1", "context.trace_id": "t1", "span_kind": "RETRIEVER", "attributes.input.value": "leave",
           "attributes.retrieval.documents": '[{"document.content": "Employees get 25 days.", "document.id": "leave.md"}, '
                                             '{"document.content": "Parental leave is 16 we'}
    (t,), report = read_traces(_jsonl(tmp_path / "phoenix.jsonl", row))
    assert [c["doc_id"] for c in t.contexts] == ["leave.md"]
    assert "line 1: retrieval.documents was cut off; its 1 complete documents read" in report.line()
    nested = {"name": "retrieve", "attributes": {"openinference": {"span": {"kind": "RETRIEVER"}}, "input": {"value": "leave"},
                                                 "retrieval": {"documents": ["Employees get 25 days.", "Parental leave."]}}}
    (t,), _ = read_traces(_jsonl(tmp_path / "nested.jsonl", nested))
    assert [c["text"] for c in t.contexts] == ["Employees get 25 days.", "Parental leave."]
    broken = {**row, "attributes.retrieval.documents": '[{"document.cont'}
    with pytest.raises(DataError, match=r"no traces: .*line 1: retrieval.documents is not valid JSON \(cut off\?\)"):
        read_traces(_jsonl(tmp_path / "broken.jsonl", broken))


def test_a_json_export_on_one_line_is_bounded_by_json_file_mb_and_a_tool_can_raise_it(tmp_path, capsys):
    """#35: a single-line OTLP .json (what exporters write) was refused by limits.line_mb, although a .json read whole
    is documented under limits.json_file_mb; rbench-audit had no way to raise a limit (--limit NAME=VALUE now)."""
    spans = [{"traceId": f"t{i}", "spanId": f"s{i}", "name": "retrieve", "attributes": [
        {"key": "openinference.span.kind", "value": {"stringValue": "RETRIEVER"}},
        {"key": "input.value", "value": {"stringValue": f"annual leave {i}"}},
        {"key": "retrieval.documents.0.document.content", "value": {"stringValue": "Employees get 25 days. " * 20}}]}
        for i in range(2500)]
    export = tmp_path / "otlp.json"
    export.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}), encoding="utf-8")
    assert export.stat().st_size > 1_000_000 and export.read_text().count("\n") == 0
    assert audit_main(["--traces", str(export), "--limit", "line_mb=1"]) == 0  # a line limit does not apply
    assert "2500 retriever spans" in capsys.readouterr().out
    assert audit_main(["--traces", str(export), "--limit", "json_file_mb=1"]) == 2
    assert "a .json file larger than 1 MB (limits.json_file_mb" in capsys.readouterr().err


def _records(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, list) else [data]
    return []


@pytest.mark.parametrize("name", sorted(n for n in FILES if not n.endswith(".csv")))
def test_the_format_registry_gives_each_record_to_exactly_one_format(name):
    """#34: trace formats are (detect, read) pairs registered by one module per family; none claims another's
    record, so the registry's order decides nothing (checked on every record the tools wrote)."""
    from benchmarks.diagnosis.trace_formats import FORMATS, claims, expand

    assert len({f.name for f in FORMATS}) == len(FORMATS) >= 7
    families = {f.read.__module__ for f in FORMATS}
    assert len(families) >= 5  # otlp, mlflow_traces, langsmith, langfuse, openinference
    for record in _records(FIXTURES / name):
        for item in expand(record) or [record]:
            got = claims(item)
            if dataset_record(item) is not None:
                assert got == [], (name, got)
            else:
                assert len(got) == 1, (name, got, sorted(item)[:6])


def test_the_registry_reads_a_record_with_the_format_that_claims_it():
    """A record of each family goes to its own reader, whatever the registry's order."""
    from benchmarks.diagnosis.trace_formats import FORMATS, spans_of

    langsmith = {"run_type": "retriever", "inputs": {"query": "q"}, "outputs": {"documents": [{"page_content": "t"}]},
                 "trace_id": "t1", "id": "r1"}
    otlp = {"traceId": "ab", "spanId": "cd", "name": "retrieve", "attributes": [
        {"key": "openinference.span.kind", "value": {"stringValue": "RETRIEVER"}},
        {"key": "input.value", "value": {"stringValue": "q"}},
        {"key": "retrieval.documents.0.document.content", "value": {"stringValue": "t"}}]}
    phoenix = {"context": {"trace_id": "t", "span_id": "s"}, "span_kind": "RETRIEVER",
               "attributes": {"input": {"value": "q"}, "retrieval": {"documents": [{"document": {"content": "t"}}]}}}
    for record, source in ((langsmith, "langsmith"), (otlp, "otlp"), (phoenix, "phoenix")):
        for order in (FORMATS, tuple(reversed(FORMATS))):
            fmt = next(f for f in order if f.detect(record))
            (span,) = list(fmt.read(record, 1))
            assert span.source == source and span.docs()[0]["content"] == "t"
        assert [s.source for s in spans_of(record, 1)] == [source]
