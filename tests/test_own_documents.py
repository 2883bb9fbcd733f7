"""Your own documents and your own system's logs: dataset=files (markdown with front matter, HTML, a PDF
written by a library, a superseded older version), hand-written queries, label-free signals, and
rbench-audit --traces on hand-built traces whose causes are known."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks.datasets.files import FilesLoader, locate, read_documents, read_queries
from benchmarks.errors import DataError

TRAVEL_NEW = """---
title: Travel Policy
version: 3
effective_date: 2026-03-01
supersedes: archive/travel-2024.md
---
# Travel Policy

## 1. Hotels

1.1 The hotel rate cap is EUR 180 per night in capital cities.

1.2 A stay above the cap needs written approval from the Regional Controller
before the stay; the approval is attached to the claim.

## 2. Claims

2.1 Claims are filed in LedgerPoint within 30 days of returning.
"""
TRAVEL_OLD = """---
title: Travel Policy (2024)
version: 2
effective_date: 2024-01-15
---
# Travel Policy

## 1. Hotels

1.1 The hotel rate cap for a hotel night is EUR 150 per night; hotel nights in capital cities follow the hotel cap.

## 2. Claims

2.1 Claims are filed in LedgerPoint within 60 days of returning.
"""
HTML = """<!doctype html><html><head><title>Password help</title><script>var x = "ignored";</script></head>
<body><h1>Resetting your password</h1><p>Passwords expire every 90 days.</p>
<h2>Locked accounts</h2><p>After 5 failed attempts the portal shows error ERR-4012.
If the lock persists, escalate to the Security Operations team.</p>
<h2>Steps</h2><ol><li>Open the portal.</li><li>Choose a new password.</li></ol></body></html>"""
TEAM = """# Security Operations team

Call extension 4417 at any hour for account lockouts.
"""
NOTES_TXT = "Plain notes without front matter.\n\nThe canteen opens at 8."


def make_folder(root: Path, *, broken: bool = True) -> Path:
    from benchmarks.scripts.handbook_pdf import write_pdf

    (root / "policies" / "archive").mkdir(parents=True)
    (root / "it").mkdir()
    (root / "policies" / "travel.md").write_text(TRAVEL_NEW, encoding="utf-8")
    (root / "policies" / "archive" / "travel-2024.md").write_text(TRAVEL_OLD, encoding="utf-8")
    (root / "it" / "password.html").write_text(HTML, encoding="utf-8")
    (root / "team.md").write_text(TEAM, encoding="utf-8")
    (root / "notes.txt").write_text(NOTES_TXT, encoding="utf-8")
    write_pdf(root / "it" / "vpn.pdf", "VPN guide", [
        ("Install", ["Install the Tunnelgate client from the software centre."]),
        ("Troubleshooting", ["Error VPN-719 means the client certificate has expired."]),
    ])
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.md").write_text("# not read", encoding="utf-8")
    (root / "metadata.jsonl").write_text(json.dumps({"id": "it/vpn.pdf", "version": 2, "effective_date": "2026-02-01"}) + "\n",
                                         encoding="utf-8")
    if broken:
        (root / "it" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return root


QUERIES = [
    {"_id": "cap", "text": "hotel rate cap per night in capital cities", "relevant": ["policies/travel.md"],
     "evidence": ["The hotel rate cap is EUR 180 per night in capital cities."], "label": "stale_version"},
    {"_id": "claims", "text": "within how many days are claims filed in LedgerPoint", "relevant": ["policies/travel.md"],
     "evidence": ["Claims are filed in LedgerPoint within 30 days of returning."], "label": "stale_version"},
    {"_id": "over-cap", "text": "who approves a stay above the cap", "relevant": ["policies/travel.md"],
     "evidence": ["A stay above the cap needs written approval from the Regional Controller before the stay"],
     "label": "chunk_boundary"},
    {"_id": "err", "text": "What does ERR-4012 mean?", "relevant": ["it/password.html"],
     "evidence": ["After 5 failed attempts the portal shows error ERR-4012."], "label": "exact_term"},
    {"_id": "vpn", "text": "VPN-719 certificate", "relevant": ["it/vpn.pdf"],
     "evidence": ["Error VPN-719 means the client certificate has expired."]},
    {"text": "when does the canteen open"},
]


def write_queries(path: Path, rows=QUERIES) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ reading
def test_folder_documents_titles_metadata_structure_and_skips(tmp_path, capsys):
    root = make_folder(tmp_path / "docs")
    notes: dict = {}
    docs = {d.id: d for d in read_documents(root, notes=notes)}
    assert sorted(docs) == ["it/password.html", "it/vpn.pdf", "notes.txt", "policies/archive/travel-2024.md",
                            "policies/travel.md", "team.md"]
    assert notes["files_skipped"] == 1 and notes["files_read"] == 6
    assert "it/broken.pdf" in capsys.readouterr().err
    # titles: front matter, the page's <title>, the PDF's, first heading, file name
    assert docs["policies/travel.md"].title == "Travel Policy"
    assert docs["it/password.html"].title == "Password help"
    assert docs["it/vpn.pdf"].title == "VPN guide"
    assert docs["team.md"].title == "Security Operations team"
    assert docs["notes.txt"].title == "notes"
    # front matter is metadata, not text; dates are ISO strings; supersedes resolves relative to the file
    new, old = docs["policies/travel.md"], docs["policies/archive/travel-2024.md"]
    assert not new.text.startswith("---") and new.text.startswith("# Travel Policy")
    assert new.metadata["effective_date"] == "2026-03-01" and new.metadata["version"] == 3
    assert new.metadata["supersedes"] == "policies/archive/travel-2024.md"
    assert old.metadata["superseded_by"] == "policies/travel.md"
    # sidecar metadata; the mtime fallback is marked and counted
    assert docs["it/vpn.pdf"].metadata["version"] == 2 and docs["it/vpn.pdf"].metadata["effective_date"] == "2026-02-01"
    assert docs["notes.txt"].metadata["date_source"] == "mtime" and notes["mtime_dates"] == 3  # notes.txt, team.md, password.html
    # headings survive as markdown lines: HTML h1/h2, PDF outline; scripts are dropped; ordered lists numbered
    html = docs["it/password.html"].text
    assert "# Resetting your password" in html and "## Locked accounts" in html and "ignored" not in html
    assert "1. Open the portal." in html and "2. Choose a new password." in html
    pdf = docs["it/vpn.pdf"].text
    assert "## Troubleshooting" in pdf and "Error VPN-719 means the client certificate has expired." in pdf


def test_sections_chunker_splits_on_extracted_headings(tmp_path):
    from chunkers.structure import SectionChunker

    root = make_folder(tmp_path / "docs", broken=False)
    docs = {d.id: d for d in read_documents(root)}
    for did in ("it/password.html", "it/vpn.pdf"):
        chunks = SectionChunker(size=64).chunk(docs[did])
        assert len(chunks) >= 2
        assert all(docs[did].text[c.start:c.end] == c.text for c in chunks)
    pdf_chunks = SectionChunker(size=64).chunk(docs["it/vpn.pdf"])
    assert any("VPN-719" in c.text and "Troubleshooting" in c.context for c in pdf_chunks)


def test_strict_makes_an_unreadable_file_an_error(tmp_path):
    root = make_folder(tmp_path / "docs")
    with pytest.raises(DataError, match=r"broken\.pdf: not a readable PDF"):
        read_documents(root, strict=True)


@pytest.mark.parametrize("name, content, pattern", [
    ("policies/bad.md", "---\ntitle: [unclosed\n---\ntext", r"bad\.md.*front matter is not valid YAML"),
    ("policies/ref.md", "---\nsupersedes: nowhere.md\n---\ntext", r"ref\.md: supersedes: 'nowhere.md' is not a document"),
])
def test_bad_metadata_is_named(tmp_path, name, content, pattern):
    root = make_folder(tmp_path / "docs", broken=False)
    (root / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=pattern):
        read_documents(root, strict=True)


def test_sidecar_with_an_unknown_document_is_an_error(tmp_path):
    root = make_folder(tmp_path / "docs", broken=False)
    (root / "metadata.jsonl").write_text('{"id": "it/vpn.pdf"}\n{"id": "it/missing.pdf", "version": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"metadata\.jsonl: .*'it/missing.pdf'"):
        read_documents(root)


def test_locate_is_whitespace_insensitive():
    text = "A stay above the cap needs written approval\nfrom the   Controller."
    assert locate(text, "approval from the Controller.") == (text.index("approval"), len(text))
    assert locate(text, "approval by the Controller") is None


def test_queries_jsonl_and_csv_give_the_same_judgments(tmp_path):
    root = make_folder(tmp_path / "docs", broken=False)
    corpus = read_documents(root)
    notes: dict = {}
    queries, qrels = read_queries(write_queries(tmp_path / "q.jsonl"), corpus, notes=notes)
    assert [q.id for q in queries][:5] == ["cap", "claims", "over-cap", "err", "vpn"]
    assert queries[5].id.startswith("q-") and queries[5].id not in qrels and notes["queries_unjudged"] == 1
    span = queries[2].metadata["evidence"][0]
    text = next(d.text for d in corpus if d.id == "policies/travel.md")
    assert text[span["start"]:span["end"]].startswith("A stay above the cap") and "\n" in text[span["start"]:span["end"]]
    csv_path = tmp_path / "q.csv"
    csv_path.write_text('_id,text,relevant,evidence,label\n'
                        'err,What does ERR-4012 mean?,it/password.html,After 5 failed attempts the portal shows error ERR-4012.,exact_term\n'
                        'two,"two docs","[""team.md"", ""it/password.html""]","[""Call extension 4417""]",\n', encoding="utf-8")
    cq, cqrels = read_queries(csv_path, corpus)
    assert cqrels == {"err": {"it/password.html": 1}, "two": {"team.md": 1, "it/password.html": 1}}
    assert cq[0].metadata["evidence"] == queries[3].metadata["evidence"] and cq[0].metadata["label"] == "exact_term"


@pytest.mark.parametrize("row, pattern", [
    ({"text": "x", "relevant": ["policies/travle.md"]}, r"q\.jsonl:2: relevant document 'policies/travle.md' .*did you mean 'policies/travel.md'"),
    ({"text": "x", "relevant": ["team.md"], "evidence": ["not in the team page"]}, r"q\.jsonl:2: evidence 'not in the team page' is in none"),
    ({"text": "x", "relevant": ["team.md"], "label": "funny"}, r"q\.jsonl:2: label 'funny' is not in the failure-mode vocabulary"),
    ({"text": "x", "evidence": ["Call extension 4417"]}, r"q\.jsonl:2: evidence needs relevant"),
    ({"text": ""}, r"q\.jsonl:2: field 'text' is empty"),
    ({"_id": "err", "text": "again"}, r"q\.jsonl:2: query id 'err' appears twice \(first on line 1\)"),
])
def test_bad_queries_name_file_and_line(tmp_path, row, pattern):
    root = make_folder(tmp_path / "docs", broken=False)
    path = write_queries(tmp_path / "q.jsonl", [QUERIES[3], row])
    with pytest.raises(DataError, match=pattern):
        read_queries(path, read_documents(root))


def test_malformed_queries_line_and_csv_without_text(tmp_path):
    root = make_folder(tmp_path / "docs", broken=False)
    corpus = read_documents(root)
    bad = tmp_path / "q.jsonl"
    bad.write_text(json.dumps(QUERIES[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q\.jsonl:2: malformed JSON"):
        read_queries(bad, corpus)
    csv_path = tmp_path / "q.csv"
    csv_path.write_text("question,relevant\nx,team.md\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q\.csv:1: a queries CSV needs a header with a 'text' column"):
        read_queries(csv_path, corpus)


# ------------------------------------------------------------------------------------------ a run
def test_rbench_on_a_folder_logs_contract_span_and_stale_metrics(tmp_path):
    """The run the README's "your own documents" section shows: contract metrics, span metrics and
    stale_hit_rate on a folder; versions=decay lowers stale_hit_rate."""
    from benchmarks.api import run

    root = make_folder(tmp_path / "docs")
    queries = write_queries(tmp_path / "q.jsonl")
    store = tmp_path / "store"
    common = ["dataset=files", f"dataset.path={root}", f"dataset.queries={queries}", "retriever=bm25", "chunker=sections",
              f"tracking.uri=sqlite:///{store}/m.db", f"tracking.artifact_root={store}/art", f"cache.dir={store}/cache"]
    plain = run(common)["metrics"]
    decayed = run([*common, "versions=decay"])["metrics"]
    for name in ("ndcg_at_10", "recall_at_10", "mrr_at_10", "evidence_coverage_at_10", "evidence_split_rate",
                 "span_recall_at_10", "span_recall_at_budget", "stale_hit_rate"):
        assert name in plain, name
    assert plain["queries_scored"] == 5 and plain["queries_skipped"] == 1 and plain["dataset_files_skipped"] == 1
    assert plain["stale_queries"] == 3  # the three travel questions: their document has a superseded predecessor
    assert plain["stale_hit_rate"] > 0 and decayed["stale_hit_rate"] < plain["stale_hit_rate"]


def test_files_config_errors_are_named(tmp_path):
    from benchmarks.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset.queries"):
        FilesLoader(path=str(make_folder(tmp_path / "d"))).load()
    with pytest.raises(DataError, match="not a folder"):
        FilesLoader(path=str(tmp_path / "nope"), queries="q.jsonl").load()


# ------------------------------------------------------------------------------------------ signals
def test_signals_each_fire_on_a_hand_built_case():
    from benchmarks.diagnosis.signals import Corpus, query_signals
    from chunkers.types import Chunk, Document

    text = "# Rules\n\n4.1 Claims are filed within 30 days.\n\n4.2 Late claims need approval from the Finance Director."
    docs = [Document("a", "Rules", text), Document("b", "Old rules", "Claims within 60 days.", {"superseded_by": "a"}),
            Document("c", "Codes", "Error E-77 means the disk is full.")]
    corpus = Corpus.of(docs)
    cut = Chunk("a#1", "a", "Rules", text[9:70], 9, 70)  # clause 4.1 whole, ends inside clause 4.2
    sigs = query_signals("what does E-77 mean for late claims", ["b", "a"], [1.00, 0.99], corpus, k=2,
                         context_chunks=[cut], bm25=["a", "b"], dense=["c", "x"])
    by = {s["signal"]: s["evidence"] for s in sigs}
    assert set(by) == {"retriever_disagreement", "missing_identifier", "stale_in_top_k", "cut_unit", "low_margin"}
    assert by["retriever_disagreement"].startswith("overlap@2 0.00")
    assert "'E-77' is in c" in by["missing_identifier"]
    assert by["stale_in_top_k"] == "b at rank 1 is superseded by a"
    assert "ends inside a clause of a: '4.2 Late claims" in by["cut_unit"]
    assert "margin 1.0%" in by["low_margin"]
    quiet = query_signals("late claims", ["a", "c"], [2.0, 1.0], corpus, k=2,
                          context_chunks=[Chunk("a#0", "a", "", text, 0, len(text))], bm25=["a", "c"], dense=["a", "c"])
    assert quiet == []


def test_holding_finds_whole_tokens_like_a_scan_of_each_document():
    """``Corpus.holding`` (substring search proposes, the boundary pattern checks) against a plain regex scan
    of every document in order, on generated corpora and terms: codes, numbers, punctuation, repeats, case."""
    import re

    from hypothesis import given, settings, strategies as st

    from benchmarks.diagnosis.signals import Corpus
    from chunkers.types import Document

    alphabet = st.sampled_from(["a", "b", "E", "-", "7", "1", " ", ".", "\n", "ab", "E-7", "71", "İ"])
    texts = st.lists(st.lists(alphabet, max_size=12).map("".join), min_size=1, max_size=6)
    terms = st.lists(alphabet, min_size=1, max_size=3).map("".join).filter(lambda t: t.strip() != "")

    @settings(max_examples=300, deadline=None)
    @given(texts, terms, st.integers(1, 4))
    def check(bodies, term, limit):
        corpus = Corpus.of([Document(f"d{i}", "", body) for i, body in enumerate(bodies)])
        left = r"(?<!\w)" if term[:1].isalnum() else ""
        right = r"(?!\w)" if term[-1:].isalnum() else ""
        pat = re.compile(left + re.escape(term.lower()) + right)
        expected = [i for i, text in corpus.lowered.items() if pat.search(text)][:limit]
        assert corpus.holding(term, limit) == expected

    check()


# ------------------------------------------------------------------------------------------ traces
def ctx(i, doc, text, score=None):
    return {"id": f"c{i}", "doc_id": doc, "text": text, **({"score": score} if score is not None else {})}


TRACES = [  # (trace, expected verdict with the corpus, expected verdict without it)
    ({"_id": "stale", "query": "hotel cap per night in a capital city?",
      "contexts": [ctx(1, "policies/archive/travel-2024.md", "1.1 The hotel rate cap for a hotel night is EUR 150 per night")],
      "reference": "The hotel rate cap is EUR 180 per night in capital cities."}, "stale_version", "other"),
    ({"_id": "cut", "query": "who approves a stay above the cap?",
      "contexts": [ctx(1, "policies/travel.md", "1.1 The hotel rate cap is EUR 180 per night in capital cities.\n\n1.2 A stay above "
                                               "the cap needs written approval from")],
      "reference": "A stay above the cap needs written approval from the Regional Controller before the stay"},
     "chunk_boundary", "chunk_boundary"),
    ({"_id": "hops", "query": "account still locked, which extension?",
      "contexts": [ctx(1, "it/password.html", "If the lock persists, escalate to the Security Operations team.")],
      "reference": ["escalate to the Security Operations team", "Call extension 4417 at any hour"]}, "multi_hop", "multi_hop"),
    ({"_id": "term", "query": "What does VPN-719 mean?",
      "contexts": [ctx(1, "it/vpn.pdf", "Install the Tunnelgate client from the software centre.")],
      "reference": "the client certificate has expired"}, "exact_term", "exact_term"),
    ({"_id": "other", "query": "when does the gym open?",
      "contexts": [ctx(1, "notes.txt", "Plain notes without front matter.")],
      "reference": "The gym opens at 6 every weekday."}, "other", "other"),
    ({"_id": "hit", "query": "when does the canteen open?",
      "contexts": [ctx(1, "notes.txt", "The canteen opens at 8.")], "reference": "the canteen opens at 8"}, None, None),
    ({"_id": "recall", "query": "hotel cap?",
      "contexts": [ctx(1, "policies/travel.md", "1.1 The hotel rate cap is EUR 180 per night in capital cities.")],
      "reference": "In capital cities the cap on the hotel rate is EUR 180 per night"}, None, None),
    ({"_id": "numbers", "query": "hotel cap?",
      "contexts": [ctx(1, "x", "The hotel rate cap is EUR 150 per night in capital cities.")],
      "reference": "The hotel rate cap is EUR 180 per night in capital cities"}, "other", "other"),
    ({"_id": "unjudged", "query": "anything", "contexts": [ctx(1, "team.md", "Call extension 4417")]}, None, None),
]


def test_traces_get_the_known_verdict_on_each_line(tmp_path):
    from benchmarks.diagnosis.traces import audit_traces

    root = make_folder(tmp_path / "docs", broken=False)
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t, _, _ in TRACES), encoding="utf-8")
    with_corpus = audit_traces(path, corpus_dir=root, overrides=[f"cache.dir={tmp_path / 'cache'}"])
    without = audit_traces(path)
    for result, col in ((with_corpus, 1), (without, 2)):
        rows = {r["query_id"]: r for r in result["rows"]}
        for line, case in enumerate(TRACES, 1):
            t, want = case[0], case[col]
            row = rows[t["_id"]]
            assert row["line"] == line
            assert row.get("verdict") == want, (col, t["_id"], row.get("evidence"))
    rows = {r["query_id"]: r for r in with_corpus["rows"]}
    assert rows["unjudged"]["reached"] is None and rows["hit"]["reached"] is True and rows["recall"]["reached"] is True
    assert "EUR 150" not in rows["numbers"]["pieces"][0]["how"] and "180 is in no context" in rows["numbers"]["pieces"][0]["how"]
    assert "superseded by policies/travel.md (which holds the reference)" in rows["stale"]["evidence"]
    assert "policies/travel.md" in rows["stale"]["trace"]["where"] and "versions=filter" in rows["stale"]["trace"]["fix"]
    assert "chunker=sections chunk holds the reference whole" in rows["cut"]["trace"]["fix"]
    assert "not in the corpus" in rows["other"]["trace"]["fix"]
    assert any(s["signal"] == "stale_in_top_k" for s in with_corpus["signals"]["stale"])


def test_openinference_spans_flat_nested_and_otlp(tmp_path):
    from benchmarks.diagnosis.traces import audit_traces, read_traces

    flat = {"name": "retrieve", "context": {"span_id": "s1"}, "attributes": {
        "openinference.span.kind": "RETRIEVER", "input.value": "What does VPN-719 mean?",
        "retrieval.documents.0.document.id": "it/vpn.pdf", "retrieval.documents.0.document.content": "Install the client.",
        "retrieval.documents.0.document.score": 0.4,
        "retrieval.documents.1.document.id": "notes.txt", "retrieval.documents.1.document.content": "Plain notes."}}
    llm = {"name": "llm", "attributes": {"openinference.span.kind": "LLM", "input.value": "prompt"}}
    nested = {"attributes": {"input": {"value": "canteen?"}, "retrieval": {"documents": [
        {"document": {"id": "notes.txt", "content": "The canteen opens at 8.", "score": 1.5}}]}}}
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (flat, llm, nested)) + "\n", encoding="utf-8")
    traces, report = read_traces(path)
    assert report.skipped == {"LLM": 1} and report.retriever_spans == 2 and [t.id for t in traces] == ["s1", "span-3"]
    assert [c["text"] for c in traces[0].contexts] == ["Install the client.", "Plain notes."]
    assert traces[0].contexts[0]["score"] == 0.4 and traces[1].query == "canteen?"
    otlp = {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "ab12", "attributes": [
        {"key": "input.value", "value": {"stringValue": "What does VPN-719 mean?"}},
        {"key": "retrieval.documents.0.document.id", "value": {"stringValue": "it/vpn.pdf"}},
        {"key": "retrieval.documents.0.document.content", "value": {"stringValue": "Install the client."}},
        {"key": "retrieval.documents.0.document.score", "value": {"doubleValue": 0.4}}]}]}]}]}
    export = tmp_path / "export.json"
    export.write_text(json.dumps(otlp), encoding="utf-8")
    (t,), _ = read_traces(export)
    assert t.id == "ab12" and t.contexts[0]["doc_id"] == "it/vpn.pdf" and t.contexts[0]["score"] == 0.4
    result = audit_traces(export)  # no reference: signals only
    assert result["rows"][0]["judged"] is False and result["verdicts"] == []


@pytest.mark.parametrize("line, pattern", [
    ({"contexts": []}, r"t\.jsonl:2: field 'query' must be a non-empty string"),
    ({"query": "q", "contexts": "text"}, r"t\.jsonl:2: field 'contexts' must be a list"),
    ({"query": "q", "contexts": [{"id": "a"}]}, r"t\.jsonl:2: contexts\[0\] must be an object with a string 'text'"),
    ({"query": "q", "contexts": [{"id": "a", "text": "t", "score": "high"}]}, r"t\.jsonl:2: contexts\[0\]\.score must be a number"),
    ({"query": "q", "contexts": [], "reference": 3}, r"t\.jsonl:2: field 'reference' must be a string or a list"),
    ({"attributes": {"retrieval.documents.0.document.content": "x"}}, r"t\.jsonl:2: retriever span without a query \(no input\.value"),
    ({"hello": 1}, r"t\.jsonl:2: neither a trace"),
])
def test_bad_traces_name_file_and_line(tmp_path, line, pattern):
    from benchmarks.diagnosis.traces import read_traces

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(TRACES[5][0]) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=pattern):
        read_traces(path)


def test_audit_cli_on_traces_writes_the_reports(tmp_path, capsys):
    from benchmarks.audit import main

    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t, _, _ in TRACES[1:6]), encoding="utf-8")
    assert main(["--traces", str(path), "--out", str(tmp_path / "out" / "t")]) == 0
    out = capsys.readouterr().out
    assert "| chunk_boundary | 1 |" in out and "| multi_hop | 1 |" in out and "Reference reached the context in 1 of 5" in out
    page = (tmp_path / "out" / "t.html").read_text(encoding="utf-8")
    assert "Label-free signals" in page and "Call extension 4417" in page
    assert main(["--traces", str(tmp_path / "missing.jsonl")]) == 2
    assert "traces file not found" in capsys.readouterr().err


def test_audit_of_a_files_run_covers_unjudged_queries(tmp_path):
    """rbench-audit on a run of a partly judged folder: verdicts for the judged queries, signals for all."""
    from mlflow.tracking import MlflowClient

    from benchmarks.api import run
    from benchmarks.audit import audit_mlflow_run

    root = make_folder(tmp_path / "docs", broken=False)
    queries = write_queries(tmp_path / "q.jsonl")
    store = tmp_path / "store"
    out = run(["dataset=files", f"dataset.path={root}", f"dataset.queries={queries}", "retriever=bm25",
               "chunker=fixed_tokens", "chunker.size=24", "chunker.overlap=0", f"tracking.uri=sqlite:///{store}/m.db",
               f"tracking.artifact_root={store}/art", f"cache.dir={store}/cache"])
    result = audit_mlflow_run(MlflowClient(f"sqlite:///{store}/m.db"), out["run_id"])
    assert len(result["rows"]) == 6 and sum(1 for r in result["rows"] if not r["judged"]) == 1
    assert set(result["signals"]) == {r["query_id"] for r in result["rows"]}
    assert any(s["signal"] == "cut_unit" for sigs in result["signals"].values() for s in sigs)  # 24-token windows cut clauses


# ------------------------------------------------------------------------------------------ rbench-generate
def test_generate_validates_spans_counts_rejections_and_caches(tmp_path, capsys, monkeypatch):
    import re

    from test_llm import Endpoint

    from benchmarks.generate import main

    root = make_folder(tmp_path / "docs", broken=False)

    class Scripted(Endpoint):
        """Answers from the prompt: quotes the first sentence of the first document; for multi_hop one
        sentence of each; every third reply adds an invented span."""

    ep = Scripted([(200, "unused", 0)])
    replies = []

    def answer(body):
        prompt = body["messages"][1]["content"]
        docs = re.findall(r"<document id='([^']+)' title='[^']*'>\n(.*?)\n</document>", prompt, re.S)
        evidence = []
        for _, text in docs:
            sentence = next(s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s) > 15 and not s.startswith("#"))
            evidence.append(sentence)
        if len(replies) % 3 == 2:
            evidence.append("An invented sentence that is in no document.")
        replies.append(1)
        return json.dumps({"query": f"question {len(replies)} about {docs[0][0]}", "evidence": evidence})

    handler = ep.server.RequestHandlerClass
    original = handler.do_POST

    def do_post(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ep.requests.append(body)
        payload = json.dumps({"choices": [{"message": {"content": answer(body)}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    handler.do_POST = do_post
    try:
        monkeypatch.setenv("RBENCH_TEST_KEY", "sk-test")
        out = tmp_path / "gen.jsonl"
        argv = ["--corpus", str(root), "--out", str(out), "--per-label", "2", "--base-url", ep.url, "--model", "m",
                "--api-key-env", "RBENCH_TEST_KEY", "--cache-dir", str(tmp_path / "llm")]
        assert main(argv) == 0
        said = capsys.readouterr().out
        rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
        labels = {r["label"] for r in rows}
        assert {"simple", "exact_term", "stale_version"} <= labels
        assert all(r["relevant"] and r["evidence"] for r in rows)
        rejected = re.search(r"evidence spans rejected \(not verbatim in the documents\): (\d+) of (\d+)", said)
        assert rejected and int(rejected.group(1)) == len(replies) // 3 and int(rejected.group(2)) > 0
        assert next(r for r in rows if r["label"] == "stale_version")["relevant"] == ["policies/travel.md"]
        # the file is what dataset=files reads
        queries, qrels = read_queries(out, read_documents(root))
        assert len(queries) == len(rows) and all(q.metadata["evidence"] for q in queries)
        # a rerun is answered from the cache; the key is never written
        n = len(ep.requests)
        assert main(argv) == 0 and len(ep.requests) == n
        assert "sk-test" not in "".join(p.read_text() for p in (tmp_path / "llm").rglob("*.json"))
    finally:
        handler.do_POST = original
        ep.close()
    assert main(["--corpus", str(root), "--out", str(out), "--labels", "nonsense"]) == 2
    assert os.path.exists(out)


def test_docx_headings_and_title(tmp_path):
    import docx

    from benchmarks.datasets.extract import extract

    d = docx.Document()
    d.core_properties.title = "Onboarding"
    d.add_heading("First week", level=1)
    d.add_paragraph("Collect your badge at reception.")
    d.add_heading("Accounts", level=2)
    d.add_paragraph("Your laptop account is created on day one.", style="List Bullet")
    d.save(tmp_path / "onboarding.docx")
    got = extract(tmp_path / "onboarding.docx")
    assert got.metadata["title"] == "Onboarding" and got.heading == "First week"
    assert got.text.split("\n\n") == ["# First week", "Collect your badge at reception.", "## Accounts",
                                      "- Your laptop account is created on day one."]


def test_generate_without_a_key_or_endpoint_says_what_is_missing(tmp_path, capsys, monkeypatch):
    """#24: not a retry loop against api.openai.com ending in 'no answer after 4 attempts'."""
    from benchmarks.generate import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    root = make_folder(tmp_path / "docs", broken=False)
    assert main(["--corpus", str(root), "--out", str(tmp_path / "q.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no LLM endpoint is configured: $OPENAI_API_KEY is not set" in err and "--base-url" in err
    assert not (tmp_path / "q.jsonl").exists()


def test_generate_with_a_missing_folder_says_so_before_anything_about_the_endpoint(tmp_path, capsys, monkeypatch):
    """#36: ``rbench-generate --corpus`` naming a folder that is not there complained about the LLM endpoint."""
    from benchmarks.generate import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert main(["--corpus", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "q.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no-such-folder" in err and "LLM endpoint" not in err
    assert not (tmp_path / "q.jsonl").exists()
