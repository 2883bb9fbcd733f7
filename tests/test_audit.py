"""#7 audit: each verdict on constructed cases, the run-time artifact, and label-free verdicts end to end."""

import json

import pytest
import shutil

from mlflow.tracking import MlflowClient

from benchmarks.audit import audit_mlflow_run, main as audit_main
from benchmarks.diagnosis.page import html_report
from benchmarks.diagnosis.run_audit import agreement, confusion
from benchmarks.diagnosis.verdicts import classify
from benchmarks.diagnosis.records import audit_rows
from benchmarks.run.runner import run_experiment
from chunkers import Chunk, Document, Query
from conftest import write_beir
from test_config import compose_cfg

META = {"pol-v1": {"superseded_by": "pol-v2"}, "pol-v2": {}}


def row(gold, *, spans=None, route=None, k=3, span_ok=None):
    r = {"query_id": "q", "k": k, "gold_docs": sorted(gold), "route": route}
    if spans is not None:
        r["spans"] = spans
        r["span_level_ok"] = all(s["in_context"] for s in spans) if span_ok is None else span_ok
    return r


def test_success_is_not_a_failure():
    assert classify(row({"a"}), ["a", "b", "c"], {}) is None


def test_stale_version_verdict():
    verdict, why = classify(row({"pol-v2"}), ["pol-v1", "pol-v2", "x"], META)
    assert verdict == "stale_version" and "pol-v1 at rank 1" in why and "rank 2" in why
    verdict, why = classify(row({"pol-v2"}), ["pol-v1", "x", "y"], META)
    assert verdict == "stale_version" and "not retrieved" in why


def test_chunk_boundary_verdict():
    spans = [{"doc_id": "a", "start": 10, "end": 90, "split": True, "in_context": False}]
    verdict, why = classify(row({"a"}, spans=spans), ["a", "b", "c"], {})
    assert verdict == "chunk_boundary" and "[10:90]" in why
    whole = [{"doc_id": "a", "start": 10, "end": 90, "split": False, "in_context": False}]
    assert classify(row({"a"}, spans=whole), ["a", "b", "c"], {})[0] == "other"  # whole span, outside the budget


def test_multi_hop_verdict():
    verdict, why = classify(row({"a", "z"}), ["a", "b", "c"], {})
    assert verdict == "multi_hop" and "found 1 of 2" in why and "'z'" in why


def test_exact_term_verdict_needs_bm25_to_find_what_dense_misses():
    r = row({"z"})
    assert classify(r, ["a", "b", "c"], {}, bm25=["z", "a"], dense=["a", "b"])[0] == "exact_term"
    assert classify(r, ["a", "b", "c"], {}, bm25=["a", "b"], dense=["a", "b"])[0] == "other"
    assert classify(r, ["a", "b", "c"], {}, bm25=["z"], dense=["z"])[0] == "other"
    # the run found every gold document (a span failure): BM25 vs dense says nothing about it
    spans = [{"doc_id": "z", "start": 0, "end": 5, "split": False, "in_context": False}]
    assert classify(row({"z"}, spans=spans), ["z", "a", "b"], {}, bm25=["z"], dense=["a"])[0] == "other"


def test_routing_verdict():
    r = row({"z"}, route="simple")
    routes = {"simple": ["a", "b", "c"], "exact_term": ["b", "z"], "multi_hop": ["a"]}
    verdict, why = classify(r, ["a", "b", "c"], {}, route_rankings=routes)
    assert verdict == "routing" and "exact_term" in why
    assert classify(row({"z"}, route="exact_term"), ["b", "z"][:1], {}, route_rankings=routes)[0] == "other"


def test_audit_rows_record_chunks_spans_and_context():
    doc = Document("a", "A", "x" * 100)
    chunks = [Chunk("a#0", "a", "A", "x" * 50, 0, 50, ""), Chunk("a#1", "a", "A", "x" * 50, 50, 100, "")]
    q = Query("q", "find", {"evidence": [{"doc_id": "a", "start": 40, "end": 60}, {"doc_id": "a", "start": 0, "end": 10}]})
    rows = audit_rows([q], {"q": {"a": 1}}, {"q": {"a": 1.0}}, {"q": {"a#0": 2.0, "a#1": 1.0}}, chunks,
                      {"q": {"route": "simple", "subqueries": ["s"]}}, k=10, budget=None)
    (r,) = rows
    assert r["doc_level_ok"] and r["route"] == "simple" and r["subqueries"] == ["s"]
    assert [c["chunk_id"] for c in r["chunks"]] == ["a#0", "a#1"] and r["chunks"][0]["gold"]
    assert r["spans"][0]["split"] is True and r["spans"][1]["split"] is False and r["span_level_ok"] is False
    assert doc.id == "a"


def test_confusion_and_agreement():
    verdicts = [{"query_id": "1", "verdict": "multi_hop"}, {"query_id": "2", "verdict": "other"},
                {"query_id": "3", "verdict": "exact_term"}]
    labels = {"1": "multi_hop", "2": "simple", "3": "chunk_boundary"}
    assert agreement(verdicts, labels) == (1, 3)
    table = confusion(verdicts, labels)
    assert table["multi_hop"]["multi_hop"] == 1 and table["chunk_boundary"]["exact_term"] == 1


CORPUS = [
    {"_id": "pol-v1", "title": "Travel policy v1", "text": "Travel policy. Hotel limit is 100 euros per night.",
     "metadata": {"superseded_by": "pol-v2", "version": 1}},
    {"_id": "pol-v2", "title": "Travel policy v2", "text": "Travel rules. The hotel cap is 150.", "metadata": {"version": 2}},
    {"_id": "team", "title": "Finance team", "text": "The Finance team books costs to budget code CC-1018."},
    {"_id": "px", "title": "PX-200 manual", "text": "Tighten the PX-200 bolts to 12 Nm."},
    {"_id": "noise", "title": "Canteen", "text": "The canteen opens at noon and serves hotel style food per night."},
]
QUERIES = [
    {"_id": "q1", "text": "hotel limit per night travel policy", "label": "stale_version"},
    {"_id": "q2", "text": "which budget code does the team that owns travel use", "label": "multi_hop"},
    {"_id": "q3", "text": "PX-200 bolts torque", "label": "exact_term"},
]
QRELS = [("q1", "pol-v2", 1), ("q2", "pol-v2", 1), ("q2", "team", 1), ("q3", "px", 1)]


def test_verdicts_do_not_depend_on_labels_end_to_end(tmp_path):
    folder = write_beir(tmp_path / "lab", CORPUS, QUERIES, QRELS)
    uri, art = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    run_experiment(compose_cfg(["dataset=beir", f"dataset.path={folder}", "dataset.name=lab", f"tracking.uri={uri}",
                                f"tracking.artifact_root={art}", "tracking.experiment=a", f"cache.dir={tmp_path}/cache",
                                "top_k=5", "metrics.k=[1,5]"]))
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("a").experiment_id])
    from benchmarks.tracking.store import download_artifact

    rows = [json.loads(x) for x in open(download_artifact(client, run.info.run_id, "audit.jsonl", str(tmp_path / "dl")))]
    assert {r["query_id"] for r in rows} == {"q1", "q2", "q3"} and all("docs" in r for r in rows)
    first = audit_mlflow_run(client, run.info.run_id, k=1)
    # the same run audited against a copy of the data with every label removed
    copy = tmp_path / "nolabels"
    shutil.copytree(folder, copy)
    (copy / "queries.jsonl").write_text("".join(json.dumps({k: v for k, v in q.items() if k != "label"}) + "\n"
                                                for q in QUERIES))
    second = audit_mlflow_run(client, run.info.run_id, k=1, dataset_overrides={"path": str(copy)})
    assert first["verdicts"] == second["verdicts"] and first["verdicts"]
    assert {v["verdict"] for v in first["verdicts"]} <= {"stale_version", "multi_hop", "exact_term", "other"}
    assert first["labels"] == {"q1": "stale_version", "q2": "multi_hop", "q3": "exact_term"}  # joined afterwards
    assert first["pipeline"] == "retriever=bm25"  # the audit's title names the pipeline it describes (#24)
    page = html_report("t", first["rows"], first["verdicts"], first["labels"], first["docs"], "")
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
    out = tmp_path / "rep" / "audit"
    assert audit_main(["--run-id", run.info.run_id, "--tracking-uri", uri, "--k", "1", "--out", str(out)]) == 0
    assert (tmp_path / "rep" / "audit.html").stat().st_size > 1000
    assert audit_main(["--run-id", "nope", "--tracking-uri", uri]) == 2
    # #36: the short id the story and the audit page show is accepted (a unique prefix)
    short = tmp_path / "rep" / "short"
    assert audit_main(["--run-id", run.info.run_id[:8], "--tracking-uri", uri, "--k", "1", "--out", str(short)]) == 0
    assert (tmp_path / "rep" / "short.html").is_file()
    assert audit_main(["--run-id", "ffffffffff", "--tracking-uri", uri]) == 2


def test_a_run_id_prefix_is_resolved_or_its_candidates_listed():
    """#36: ``--run-id 5c655744`` finds the one run whose id starts so; a prefix several runs share lists them."""
    from types import SimpleNamespace as NS

    from benchmarks.errors import ConfigError
    from benchmarks.tracking.store import resolve_run_id

    class Page(list):
        token = None

    ids = ["5c655744aa" + "0" * 22, "5c655744bb" + "1" * 22, "7d00" + "2" * 28]

    class Client:
        def search_experiments(self):
            return [NS(experiment_id="0"), NS(experiment_id="1")]

        def search_runs(self, experiment_ids, max_results, page_token):
            assert experiment_ids == ["0", "1"]
            return Page(NS(info=NS(run_id=i, run_name=f"run {n}")) for n, i in enumerate(ids))

    assert resolve_run_id(Client(), "7d00") == ids[2]
    assert resolve_run_id(Client(), "5c655744aa") == ids[0]
    assert resolve_run_id(Client(), ids[1]) == ids[1]  # a whole id is taken as it is
    with pytest.raises(ConfigError, match=r"matches 2 runs: 5c655744aa0+ \(run 0\), 5c655744bb1+ \(run 1\)"):
        resolve_run_id(Client(), "5c655744")
    with pytest.raises(ConfigError, match="no run's id starts with it"):
        resolve_run_id(Client(), "abcd")
    with pytest.raises(ConfigError, match="at least its first 4"):
        resolve_run_id(Client(), "5c")


@pytest.mark.parametrize("choices, named", [
    ({"chunker": "fixed_tokens", "retriever": "dense", "decomposer": "none", "router": "none", "versions": "ignore",
      "reranker": "none"}, "chunker=fixed_tokens + retriever=dense"),
    ({"chunker": "auto", "retriever": "bm25", "decomposer": "none", "router": "rules", "versions": "decay"},
     "chunker=auto + router=rules + versions=decay"),  # a router replaces the retriever it does not use
    ({"chunker": "none", "retriever": "hybrid", "decomposer": "iterative", "reranker": "bi_encoder"},
     "retriever=hybrid + decomposer=iterative + reranker=bi_encoder"),
])
def test_a_pipeline_is_named_by_the_options_that_change_something(choices, named):
    from benchmarks.tracking.groups import describe

    assert describe(choices) == named


def test_the_audit_page_marks_the_evidence_a_passage_holds_and_shows_the_rest():
    """#36: a chunk that holds the first part of a gold span shows that part marked (not cut off by the preview's
    first 220 characters) and the missing part beside it; a trace's passage marks its reference found in its text."""
    from benchmarks.diagnosis.page import evidence_marks, marked_html, reference_marks

    doc = "x" * 400 + "A sabbatical request requires two signatures: the second from the DPO." + "y" * 50
    start = doc.index("A sabbatical")
    span = {"doc_id": "d", "start": start, "end": start + 70}
    chunk = doc[100:start + 29]  # the chunk ends inside the span, after "requires"
    marks, missing = evidence_marks(chunk, 100, [span], doc)
    assert [chunk[a:b] for a, b in marks] == ["A sabbatical request requires"]
    assert missing == [doc[start + 29:start + 70]]
    page = marked_html(chunk, marks, missing)
    assert "<mark>A sabbatical request requires</mark>" in page and page.startswith("…x")
    assert "missing from this passage: <del>two signatures: the second from the DPO.</del>" in page
    # a chunk that misses only the span's closing full stop misses no evidence
    assert evidence_marks(doc[:start + 69], 0, [span], doc)[1] == []
    # a span the passage does not reach: the plain preview, no marks
    assert evidence_marks(doc[:300], 0, [span], doc) == ([], [])
    assert marked_html("short text", [], []) == "short text"
    # a trace: the longest stretch of the reference found, case-insensitively, and the rest named
    text = "Policy 6.3: a Sabbatical request above 5,000 euros requires two signatures."
    marks, missing = reference_marks(text, ["A sabbatical request above 5,000 euros requires two signatures from HR."])
    assert [text[a:b] for a, b in marks] == ["a Sabbatical request above 5,000 euros requires two signatures"]
    assert missing == [" from HR."]
    assert reference_marks(text, ["nothing like it at all, not even close"]) == ([], [])
