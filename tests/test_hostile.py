"""Hostile input and broken surroundings (#22): bounded memory, no hangs, no tracebacks, one reading of
every id and value, counts that add up.

Each case goes through the real entry point (``rbench`` in-process, ``rbench-audit``/``rbench-report`` mains,
or a subprocess where the environment matters) and asserts exit 2, a message naming the file:line, key or
path, no traceback, and that nothing already stored changed. The memory cases run the readers in a
subprocess under an address-space limit.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from test_reliability import CORPUS, QRELS, QUERIES, assert_clear_error, beir_folder, jsonl

ROOT = Path(__file__).resolve().parent.parent
RBENCH = str(Path(sys.executable).parent / "rbench")


def rbench(argv: list[str], capsys, home: Path, *, tail: list[str] | None = None) -> tuple[int, str]:
    """``rbench`` in this process with its writes under ``home`` (``tail``: the trailing overrides instead)."""
    from hydra.core.global_hydra import GlobalHydra

    import benchmarks.cli as cli

    if tail is None:
        tail = [f"tracking.uri=sqlite:///{home}/m.db", f"tracking.artifact_root={home}/art", f"cache.dir={home}/cache",
                f"hydra.run.dir={home}/hydra", f"hydra.sweep.dir={home}/sweep"]
    old = sys.argv
    sys.argv = ["rbench", *argv, *tail]
    code = 0
    try:
        cli.run()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    finally:
        sys.argv = old
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        GlobalHydra.instance().clear()
        from benchmarks.datasets import limits

        limits.configure(None)
    return code, capsys.readouterr().err


def tool(main, argv: list[str], capsys) -> tuple[int, str]:
    """A tool's main (rbench-audit, rbench-report) as its console entry runs it: (exit code, stderr)."""
    import benchmarks.cli as cli

    try:
        cli._tool("rbench-tool", lambda: main(argv))
    except SystemExit as err:
        return (err.code if isinstance(err.code, int) else 1), capsys.readouterr().err
    return 0, capsys.readouterr().err


def finished_runs(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute("select run_uuid, status from runs").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


# ------------------------------------------------------------------------------------------ bounded reading
def test_a_line_longer_than_the_limit_is_an_error_before_it_is_held(tmp_path, capsys, home):
    big = {"_id": "d9", "title": "", "text": "word " * 420_000}  # ~2 MB on one line
    folder = beir_folder(tmp_path / "ds", corpus=[*CORPUS, big])
    code, err = rbench(["dataset=beir", f"dataset.path={folder}", "limits.line_mb=1"], capsys, home)
    assert_clear_error(code, err, r"corpus\.jsonl:4: line longer than 1 MB \(limits\.line_mb")


def test_a_document_larger_than_the_limit_is_an_error(tmp_path, capsys, home):
    big = {"_id": "d9", "title": "", "text": "word " * 220_000}  # ~1 MB
    folder = beir_folder(tmp_path / "ds", corpus=[*CORPUS, big])
    code, err = rbench(["dataset=beir", f"dataset.path={folder}", "limits.document_mb=0.5"], capsys, home)
    assert_clear_error(code, err, r"corpus\.jsonl:4: a document of 1 MB, more than 512 KB \(limits\.document_mb\)")


def test_a_gzip_expanding_past_the_line_limit_is_stopped_inside_the_stream(tmp_path, capsys, home):
    folder = beir_folder(tmp_path / "ds", corpus=False)
    with gzip.open(folder / "corpus.jsonl.gz", "wb", compresslevel=1) as fh:
        fh.write(json.dumps(CORPUS[0]).encode() + b"\n" + b'{"_id": "x", "text": "' + b"a" * (3 << 20) + b'"}\n')
    assert (folder / "corpus.jsonl.gz").stat().st_size < 100_000
    code, err = rbench(["dataset=beir", f"dataset.path={folder}", "limits.line_mb=1"], capsys, home)
    assert_clear_error(code, err, r"corpus\.jsonl\.gz:2: line longer than 1 MB")


def test_a_gzip_of_many_short_lines_is_bounded_by_the_file_limit(tmp_path):
    from benchmarks.datasets import limits
    from benchmarks.datasets.base import text_lines
    from benchmarks.errors import DataError

    path = tmp_path / "q.tsv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"q1\td1\t1\n" * 300_000)  # 2.4 MB of text
    limits.configure({"data_file_gb": 0.001})  # 1 MB
    try:
        with pytest.raises(DataError, match=r"q\.tsv\.gz:\d+: more than 0\.001 GB of text once decompressed"):
            for _ in text_lines(path):
                pass
    finally:
        limits.configure(None)


@pytest.mark.parametrize("where", ["corpus", "queries"])
def test_json_nested_100000_levels_is_an_error_not_a_recursion(where, tmp_path, capsys, home):
    deep = '{"_id": "d9", "text": "x", "m": ' + "[" * 100_000 + "]" * 100_000 + "}"
    spec = {"corpus": [*CORPUS, deep]} if where == "corpus" else {"queries": [*QUERIES, deep]}
    folder = beir_folder(tmp_path / "ds", **spec)
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert_clear_error(code, err, rf"{where}\.jsonl:\d: JSON nested more than 64 levels deep \(limits\.json_depth\)")


def test_deep_json_in_a_traces_file_is_an_error(tmp_path, capsys):
    from benchmarks.audit import main

    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps({"query": "q", "contexts": [{"id": "a", "text": "t"}]}) + "\n"
                    + '{"query": "q", "contexts": ' + "[" * 100_000 + "]" * 100_000 + "}\n", encoding="utf-8")
    code, err = tool(main, ["--traces", str(path)], capsys)
    assert_clear_error(code, err, r"traces\.jsonl:2: JSON nested more than 64 levels deep")
    path = tmp_path / "export.json"  # one JSON document read whole
    path.write_text('{"resourceSpans": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    code, err = tool(main, ["--traces", str(path)], capsys)
    assert_clear_error(code, err, r"export\.json: JSON nested more than 64 levels deep")


OTLP_CASES = {
    "resourceSpans is a string": ({"resourceSpans": "abc"}, r"'resourceSpans' must be a list of objects, got str"),
    "spans is a string": ({"resourceSpans": [{"scopeSpans": [{"spans": "abc"}]}]}, r"'spans' must be a list of objects"),
    "scopeSpans holds numbers": ({"resourceSpans": [{"scopeSpans": [1, 2]}]}, r"'scopeSpans' must be a list of objects, got a list holding"),
    "intValue is not a number": ({"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [
        {"key": "retrieval.documents.0.document.score", "value": {"intValue": "abc"}}]}]}]}]},
        r"span 1: span attribute: intValue 'abc' is not an integer"),
    "arrayValue is a string": ({"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [
        {"key": "tags", "value": {"arrayValue": "x"}}]}]}]}]}, r"arrayValue must be an object with a list 'values'"),
}


@pytest.mark.parametrize("case", list(OTLP_CASES))
def test_malformed_otlp_exports_are_clear_errors(case, tmp_path, capsys):
    from benchmarks.audit import main

    obj, pattern = OTLP_CASES[case]
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(obj) + "\n", encoding="utf-8")
    code, err = tool(main, ["--traces", str(path)], capsys)
    assert_clear_error(code, err, r"export\.jsonl: ?1\b.*" + pattern)


# ------------------------------------------------------------------------------------------ document folders
def _policy(root: Path, name: str, text: str, **front) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"{k}: {v}\n" for k, v in front.items())
    path.write_text((f"---\n{head}---\n" if front else "") + text, encoding="utf-8")
    return path


def _queries(path: Path, relevant: str = "leave.md") -> Path:
    path.write_text(json.dumps({"_id": "q1", "text": "how many days of annual leave", "relevant": [relevant]}) + "\n",
                    encoding="utf-8")
    return path


BILLION_LAUGHS = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)


@pytest.fixture
def hostile_folder(tmp_path):
    """A folder with one good policy and every kind of entry that must not be read as a document."""
    root = tmp_path / "docs"
    _policy(root, "leave.md", "# Annual leave\n\nEmployees get 25 days of annual leave.\n", effective_date="2024-01-01")
    os.mkfifo(root / "notes.md")  # a named pipe: opening it blocks forever
    (root / "zero.txt").symlink_to("/dev/zero")  # a device that never ends
    outside = tmp_path / "secret.md"
    outside.write_text("# Outside\n\nNot part of the corpus.\n", encoding="utf-8")
    (root / "linked.md").symlink_to(outside)
    (root / "inside.md").symlink_to(root / "leave.md")  # a link inside the folder is read
    (root / "bomb.md").write_text(f"---\n{BILLION_LAUGHS}---\n# Bomb\n\ntext\n", encoding="utf-8")
    (root / "loop.md").write_text("---\na: &x [*x]\n---\n# Loop\n\ntext\n", encoding="utf-8")
    (root / "sheet.numbers").write_bytes(b"PK\x03\x04 not read")  # Apple Numbers: a format that is not read
    (root / "big.txt").write_bytes(b"x" * (2 << 20))
    (root / "nested").mkdir()
    (root / "nested" / "up").symlink_to(tmp_path)  # a link to a folder above: not followed
    return root


def test_a_hostile_folder_is_read_without_hanging_and_every_file_is_accounted_for(hostile_folder, tmp_path, capsys, home):
    t0 = time.perf_counter()
    code, err = rbench(["dataset=files", f"dataset.path={hostile_folder}", f"dataset.queries={_queries(tmp_path / 'q.jsonl')}",
                        "limits.file_mb=1"], capsys, home)
    assert code == 0, err
    assert time.perf_counter() - t0 < 60  # the pipe was never opened
    assert "Traceback" not in err
    for name, why in {"notes.md": r"not a regular file \(a named pipe\)", "zero.txt": r"a symbolic link to /dev/zero, outside the folder",
                      "linked.md": r"a symbolic link to .*secret\.md, outside the folder",
                      "bomb.md": r"front matter expands to more than 10000 values", "loop.md": r"front matter is recursive",
                      "big.txt": r"2 MB, larger than 1 MB \(limits\.file_mb\)", "nested/up": r"a symbolic link to a folder"}.items():
        assert __import__("re").search(rf"{name}: {why}", err), (name, err)
    assert "1 file(s) under" in err and "sheet.numbers" in err and "read: .md" in err
    from benchmarks.datasets.files import read_documents
    from benchmarks.datasets import limits

    notes: dict[str, int] = {}
    limits.configure({"file_mb": 1})
    try:
        docs = read_documents(hostile_folder, notes=notes)
    finally:
        limits.configure(None)
    assert sorted(d.id for d in docs) == ["inside.md", "leave.md"]
    # every entry accounted for: read + skipped + unsupported = everything under the folder
    assert notes["files_read"] == 2 and notes["files_unsupported"] == 1 and notes["files_skipped"] == 7


def test_a_hostile_folder_under_strict_names_the_first_bad_file(hostile_folder, tmp_path, capsys, home):
    code, err = rbench(["dataset=files", f"dataset.path={hostile_folder}", f"dataset.queries={_queries(tmp_path / 'q.jsonl')}",
                        "dataset.strict=true"], capsys, home)
    assert_clear_error(code, err, r"docs/(bomb|big|linked|loop|nested/up|notes|zero)[^:]*: .*dataset\.strict=true")


def test_a_folder_of_unsupported_files_names_them_and_the_formats_read(tmp_path, capsys, home):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "budget.numbers").write_bytes(b"PK")
    (root / "slides.key").write_bytes(b"PK")
    code, err = rbench(["dataset=files", f"dataset.path={root}", f"dataset.queries={_queries(tmp_path / 'q.jsonl')}"],
                       capsys, home)
    assert_clear_error(code, err, r"docs: no document could be read: 2 file\(s\) under the folder, 0 skipped, 2 of formats "
                                  r"that are not read \(e\.g\. budget\.numbers\); the formats read are \.md, \.markdown")


# ------------------------------------------------------------------------------------------ one reading of ids and values
def test_ids_are_read_without_surrounding_spaces_in_every_file(tmp_path, capsys, home):
    corpus = [{**CORPUS[0], "_id": "d1 "}, *CORPUS[1:]]
    folder = beir_folder(tmp_path / "ds", corpus=corpus, qrels="query-id\tcorpus-id\tscore\nq1\td1 \t1\nq2\td3\t1\n")
    from benchmarks.datasets.beir import BeirLoader

    ds = BeirLoader(path=str(folder)).load()
    assert [d.id for d in ds.corpus][0] == "d1" and ds.qrels == {"q1": {"d1": 1}, "q2": {"d3": 1}}
    assert ds.notes["ids_stripped"] == 1
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert code == 0, err


def test_ids_equal_after_stripping_are_duplicates(tmp_path, capsys, home):
    folder = beir_folder(tmp_path / "ds", corpus=[*CORPUS, {**CORPUS[0], "_id": "d1 ", "text": "other"}])
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert_clear_error(code, err, r"corpus\.jsonl:4: duplicate doc id 'd1' \(first on line 1; ids are compared without")


@pytest.mark.parametrize("qrels,pattern", [
    (QRELS + "q1\td\t2\t1\n", r"test\.tsv:4: expected 3 tab-separated columns like line 1 .* got 4 \(a tab inside an id\?\)"),
    ("q1 0 d1 1\nq2 0 d3\n", r"test\.tsv:2: expected 4 columns like line 1 \(TREC qrels"),
    ("q1\t0\td1\t1\nq2\td3\t1\n", r"test\.tsv:2: expected 4 tab-separated columns like line 1"),
])
def test_a_qrels_line_with_the_wrong_number_of_columns_is_an_error(qrels, pattern, tmp_path, capsys, home):
    folder = beir_folder(tmp_path / "ds", qrels=qrels)
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert_clear_error(code, err, pattern)


def test_typed_booleans_and_dates_in_corpus_metadata(tmp_path, capsys, home):
    from benchmarks.datasets.beir import read_corpus

    folder = beir_folder(tmp_path / "ok", corpus=[{**CORPUS[0], "metadata": {"deprecated": "false",
                                                                             "effective_date": "2024-03-01T09:00:00Z"}},
                                                  {**CORPUS[1], "deprecated": "yes"}, CORPUS[2]])
    docs = read_corpus(folder / "corpus.jsonl")
    assert docs[0].metadata == {"deprecated": False, "effective_date": "2024-03-01"} and docs[1].metadata["deprecated"] is True
    for meta, pattern in (({"deprecated": "perhaps"}, r"corpus\.jsonl:1: metadata deprecated: expected true or false, got 'perhaps'"),
                          ({"effective_date": "banana"}, r"corpus\.jsonl:1: metadata effective_date: expected an ISO 8601 date"),
                          ({"metadata": "x"}, r"corpus\.jsonl:1: field 'metadata' must be a JSON object, got str")):
        bad = beir_folder(tmp_path / f"bad{len(meta)}{list(meta)[0]}", corpus=[{**CORPUS[0], **meta}, *CORPUS[1:]])
        code, err = rbench(["dataset=beir", f"dataset.path={bad}"], capsys, home)
        assert_clear_error(code, err, pattern)


def test_a_string_false_is_not_deprecated_in_a_folder_and_a_bad_date_is_skipped_or_an_error(tmp_path, capsys, home):
    from benchmarks.datasets.files import read_documents

    root = tmp_path / "docs"
    _policy(root, "leave.md", "# Leave\n\n25 days.\n", deprecated='"false"', effective_date="2024-01-01")
    _policy(root, "old.md", "# Old\n\n20 days.\n", effective_date="banana")
    notes: dict[str, int] = {}
    docs = {d.id: d for d in read_documents(root, notes=notes)}
    assert docs["leave.md"].metadata["deprecated"] is False and "old.md" not in docs and notes["files_skipped"] == 1
    assert "old.md: metadata effective_date: expected an ISO 8601 date" in capsys.readouterr().err
    code, err = rbench(["dataset=files", f"dataset.path={root}", f"dataset.queries={_queries(tmp_path / 'q.jsonl')}",
                        "dataset.strict=true"], capsys, home)
    assert_clear_error(code, err, r"docs/old\.md: metadata effective_date: expected an ISO 8601 date such as 2024-03-01, "
                                  r"got 'banana'")


@pytest.mark.parametrize("links,pattern", [
    ({"a.md": "a.md"}, r"docs/a\.md: supersedes: the document names itself"),
    ({"a.md": "b.md", "b.md": "a.md"}, r"docs/a\.md: versions form a cycle: a\.md -> superseded by -> b\.md -> superseded by -> a\.md"),
    ({"a.md": "b.md", "b.md": "c.md", "c.md": "a.md"}, r"versions form a cycle: "),
])
def test_supersedes_cycles_and_self_supersession_are_errors_naming_the_files(links, pattern, tmp_path, capsys, home):
    root = tmp_path / "docs"
    for name in ("a.md", "b.md", "c.md"):
        front = {"supersedes": links[name]} if name in links else {}
        _policy(root, name, f"# {name}\n\nannual leave text\n", **front)
    code, err = rbench(["dataset=files", f"dataset.path={root}", f"dataset.queries={_queries(tmp_path / 'q.jsonl', 'a.md')}"],
                       capsys, home)
    assert_clear_error(code, err, pattern)


def test_version_cycles_in_a_beir_corpus_are_errors(tmp_path, capsys, home):
    corpus = [{**CORPUS[0], "metadata": {"superseded_by": "d2"}}, {**CORPUS[1], "metadata": {"superseded_by": "d1"}}, CORPUS[2]]
    folder = beir_folder(tmp_path / "ds", corpus=corpus)
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert_clear_error(code, err, r"corpus\.jsonl:1: versions form a cycle: d1 -> superseded by -> d2 -> superseded by -> d1")
    folder = beir_folder(tmp_path / "ds2", corpus=[{**CORPUS[0], "metadata": {"superseded_by": "d404"}}, *CORPUS[1:]])
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert_clear_error(code, err, r"corpus\.jsonl:1: superseded_by: 'd404' is not a document of the corpus")


# ------------------------------------------------------------------------------------------ numeric ranges, sweeps
@pytest.mark.parametrize("argv,pattern", [
    (["--k", "-5"], r"argument --k: expected an integer >= 1, got -5"),
    (["--k", "0"], r"argument --k: expected an integer >= 1, got 0"),
    (["--examples", "-1"], r"argument --examples: expected an integer >= 0, got -1"),
    (["--recall-threshold", "1.5"], r"argument --recall-threshold: expected a number in \[0, 1\], got 1\.5"),
    (["--recall-threshold", "0"], r"argument --recall-threshold: expected a number in \[0, 1\], got 0"),
])
def test_audit_numeric_options_have_ranges(argv, pattern, tmp_path):
    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"query": "q", "contexts": [{"id": "a", "text": "t"}]}) + "\n", encoding="utf-8")
    res = subprocess.run([str(Path(sys.executable).parent / "rbench-audit"), "--traces", str(traces), *argv],
                         capture_output=True, text=True, timeout=60)
    assert_clear_error(res.returncode, res.stderr, pattern)


@pytest.mark.parametrize("argv,pattern", [
    (["rbench-generate", "--corpus", ".", "--out", "x.jsonl", "--per-label", "0"], r"argument --per-label: expected an integer >= 1"),
    (["rbench-generate", "--corpus", ".", "--out", "x.jsonl", "--timeout-s", "-1"], r"argument --timeout-s: expected a number > 0"),
    (["rbench-report", "--experiment", "x", "--margin", "-0.1"], r"argument --margin/--tolerance: expected a number >= 0"),
    (["rbench-report", "--experiment", "x", "--alpha", "1.5"], r"argument --alpha: expected a number in \[0, 1\], got 1.5"),
])
def test_other_tools_numeric_options_have_ranges(argv, pattern, tmp_path):
    res = subprocess.run([str(Path(sys.executable).parent / argv[0]), *argv[1:]], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert_clear_error(res.returncode, res.stderr, pattern)


@pytest.mark.parametrize("override,pattern", [
    ("limits.line_mb=-1", r"limits\.line_mb: expected a number >= 0\.001, got -1"),
    ("limits.json_depth=1", r"limits\.json_depth: expected an integer in \[2, 100000\], got 1"),
    ("dataset.seed=-2", r"dataset\.seed: expected an integer >= 0, got -2"),
])
def test_new_numeric_config_keys_have_ranges(override, pattern, capsys, home):
    code, err = rbench([override], capsys, home)
    assert_clear_error(code, err, pattern)


@pytest.mark.slow
def test_every_sweep_point_is_validated_before_the_first_runs(tmp_path, capsys, home):
    values = ",".join(f"{0.01 * i:.2f}" for i in range(70)) + ",-1"  # 71 points; the last is invalid
    db = home / "sweep.db"
    code, err = rbench(["-m", f"retriever.k1={values}"], capsys, home,
                       tail=[f"tracking.uri=sqlite:///{db}", f"cache.dir={home}/cache", f"hydra.sweep.dir={home}/sw"])
    assert_clear_error(code, err, r"sweep point 71 of 71: retriever\.k1=-1\):\n  retriever\.k1: expected a number >= 0, got -1")
    assert not db.exists()  # no point ran


# ------------------------------------------------------------------------------------------ counts add up
def test_hotpotqa_counts_add_up_when_a_fact_names_a_title_not_in_the_context(tmp_path, capsys, home):
    def rec(i, fact_title="A"):
        return {"_id": f"h{i}", "question": f"question {i} about alpha", "answer": "x", "type": "bridge",
                "context": [["A", ["Alpha is a letter. ", "It comes first."]], ["B", ["Beta follows."]]],
                "supporting_facts": [[fact_title, 0], [fact_title, 1]]}

    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([rec(0), rec(1), rec(2), rec(3), rec(4, fact_title="Gamma")]), encoding="utf-8")
    code, err = rbench(["dataset=hotpotqa", f"dataset.path={path}"], capsys, home)
    out = capsys.readouterr().out if code else ""
    from benchmarks.datasets.multihop import HotpotQALoader

    ds = HotpotQALoader(path=str(path)).load()
    assert len(ds.queries) == 5 and len(ds.qrels) == 4 and ds.notes["questions_without_gold_in_context"] == 1
    assert code == 0, err + out


def test_the_summary_counts_add_up_to_the_file(tmp_path, capsys, home):
    path = tmp_path / "hotpot.json"
    recs = [{"_id": f"h{i}", "question": f"q {i} alpha", "answer": "x", "type": "bridge",
             "context": [["A", ["Alpha is a letter."]]], "supporting_facts": [["A" if i else "Z", 0]]} for i in range(5)]
    path.write_text(json.dumps(recs), encoding="utf-8")
    import benchmarks.cli as cli  # noqa: F401
    from hydra.core.global_hydra import GlobalHydra

    old = sys.argv
    sys.argv = ["rbench", "dataset=hotpotqa", f"dataset.path={path}", f"tracking.uri=sqlite:///{home}/m.db",
                f"cache.dir={home}/cache", f"hydra.run.dir={home}/hydra"]
    try:
        cli.run()
    except SystemExit as err:
        assert err.code in (0, None)
    finally:
        sys.argv = old
        GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert "4 queries scored, 1 skipped" in out, out


# ------------------------------------------------------------------------------------------ broken surroundings
def test_a_tracking_uri_naming_a_file_that_is_not_sqlite(tmp_path, capsys, home):
    notdb = tmp_path / "notes.txt"
    notdb.write_text("hello, this is not a database\n", encoding="utf-8")
    code, err = rbench([], capsys, home, tail=[f"tracking.uri=sqlite:///{notdb}", f"cache.dir={home}/cache",
                                                f"hydra.run.dir={home}/hydra"])
    assert_clear_error(code, err, r"tracking\.uri: .*notes\.txt is not an SQLite database")
    assert notdb.read_text(encoding="utf-8") == "hello, this is not a database\n"
    from benchmarks.report import main

    code, err = tool(main, ["--experiment", "x", "--tracking-uri", f"sqlite:///{notdb}"], capsys)
    assert_clear_error(code, err, r"--tracking-uri: .*notes\.txt is not an SQLite database")


def test_checking_a_store_this_process_has_open_keeps_its_locks(tmp_path):
    """A sweep's second point checks the store while the first point's MLflow connections are still open in the
    process. The check read the file's first bytes with open()/close(), and closing any descriptor of an SQLite file
    drops every POSIX lock SQLite holds on it in the process: the next reader to close its connection (rbench-report,
    rbench-audit) then took the store for unused and deleted its write-ahead log under the sweep, whose next point
    failed with 'disk I/O error' (seen running the committed results' sweeps while reports read the store)."""
    from benchmarks.tracking.tracker import check_store

    store = tmp_path / "m.db"
    held = sqlite3.connect(store)  # the sweep's open connection (MLflow's engine keeps one)
    held.execute("PRAGMA journal_mode=WAL")
    held.execute("create table runs (id)")
    held.execute("insert into runs values (1)")
    held.commit()
    held.execute("select count(*) from runs").fetchall()
    check_store(f"sqlite:///{store}")
    check_store(f"sqlite:///{store}", write=False)
    reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "c.execute('select count(*) from runs').fetchall(); c.close()")
    subprocess.run([sys.executable, "-c", reader, str(store)], check=True, timeout=60)
    assert (tmp_path / "m.db-wal").exists(), "a reader's close deleted the write-ahead log of a store still open here"
    held.execute("insert into runs values (2)")
    held.commit()
    held.close()
    assert sqlite3.connect(store).execute("select count(*) from runs").fetchone() == (2,)


def _run_env(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RBENCH_CACHE_DIR")}
    return subprocess.run([RBENCH, *argv], capture_output=True, text=True, timeout=120, cwd=cwd, env={**full, **env})


def test_rbench_home_or_cache_dir_that_is_a_regular_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    t0 = time.perf_counter()
    res = _run_env([], {"RBENCH_HOME": str(afile)}, tmp_path)
    assert_clear_error(res.returncode, res.stderr, r"hydra\.run\.dir \(RBENCH_HOME\): .*afile is a file, not a folder")
    res = _run_env([f"cache.dir={afile}/cache"], {"RBENCH_HOME": str(tmp_path / "h")}, tmp_path)
    assert_clear_error(res.returncode, res.stderr, r"cache\.dir: .*afile/cache cannot be written: .*afile is a file, not a folder")
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "h" / "results" / "mlflow.db").exists()


@pytest.fixture
def readonly(tmp_path):
    """A folder nobody can write: a read-only tmpfs as root (permissions do not stop root), else mode 0555."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {res.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_read_only_home_or_run_folder_fails_before_anything_is_computed(readonly, tmp_path):
    res = _run_env([], {"RBENCH_HOME": str(readonly)}, tmp_path)
    assert_clear_error(res.returncode, res.stderr, r"hydra\.run\.dir \(RBENCH_HOME\): .*ro/results/hydra/.* cannot be "
                                                   r"written: cannot create files in .*ro \(read-only file system|permission denied\)")
    res = _run_env([f"hydra.run.dir={readonly}/run"], {"RBENCH_HOME": str(tmp_path / "h")}, tmp_path)
    assert_clear_error(res.returncode, res.stderr, r"hydra\.run\.dir: .*ro/run cannot be written")
    res = _run_env([f"tracking.uri=sqlite:///{readonly}/m.db"], {"RBENCH_HOME": str(tmp_path / "h")}, tmp_path)
    assert_clear_error(res.returncode, res.stderr, r"tracking\.uri: the MLflow store .*ro/m\.db cannot be written")
    assert not list((tmp_path / "h").rglob("*.db"))


def test_out_under_a_regular_file_is_one_line(tmp_path, capsys):
    from benchmarks.audit import main

    traces = tmp_path / "t.jsonl"
    traces.write_text(json.dumps({"query": "leave days", "contexts": [{"id": "a", "text": "25 days of leave"}],
                                  "reference": "25 days"}) + "\n", encoding="utf-8")
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    code, err = tool(main, ["--traces", str(traces), "--out", str(afile / "report")], capsys)
    assert_clear_error(code, err, r"afile.* is a file, not a folder|cannot write .*afile")
    assert afile.read_text(encoding="utf-8") == "x"


def test_a_store_failing_mid_run_keeps_what_was_computed(tmp_path, capsys, monkeypatch):
    from benchmarks.tracking import tracker

    def broken(self, metrics):
        raise RuntimeError("the tracking server went away (HTTP 503)")

    monkeypatch.setattr(tracker.Tracker, "log_metrics", broken)
    h = tmp_path / "h"
    code, err = rbench([f"home={h}"], capsys, h)
    assert_clear_error(code, err, r"the tracking store .* failed while logging the run \(RuntimeError: the tracking "
                                  r"server went away \(HTTP 503\)\); the run is marked FAILED and its results are kept in")
    kept = list((h / "results" / "unlogged").glob("*"))
    assert len(kept) == 1, err
    assert {"run.trec", "per_query.csv", "metrics.json", "config.yaml"} <= {p.name for p in kept[0].iterdir()}
    assert json.loads((kept[0] / "metrics.json").read_text())["ndcg_at_10"] > 0
    assert f"its results (run.trec, per_query.csv, metrics.json, ...) are kept in {kept[0]}" in err


# ------------------------------------------------------------------------------------------ memory limits
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space for the reader's process (its imports take ~300 MB)


def _limited(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "reader.py"
    head = ["import resource, sys", "from pathlib import Path", "from benchmarks.errors import DataError",
            "import benchmarks.datasets.beir, benchmarks.datasets.files, benchmarks.diagnosis.traces",
            f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))", "try:"]
    tail = ["except DataError as err:", "    print('DataError:', err)", "    sys.exit(2)",
            "except MemoryError:", "    print('MemoryError')", "    sys.exit(3)"]
    script.write_text("\n".join(head + ["    " + ln for ln in code.splitlines()] + tail) + "\n", encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("case", ["single-line document", "gzip bomb", "dev zero", "yaml bomb", "deep json"])
def test_no_reader_exceeds_its_memory_limit_on_the_bomb_cases(case, tmp_path):
    if case == "single-line document":  # 100 MB on one line (the line limit is 64 MB)
        path = tmp_path / "corpus.jsonl"
        with open(path, "wb") as fh:
            fh.write(b'{"_id": "d", "text": "' + b"word " * (20 << 20) + b'"}\n')
        code = f"benchmarks.datasets.beir.read_corpus(Path({str(path)!r}))"
    elif case == "gzip bomb":  # ~1 MB of gzip expanding to 1 GB on one line
        path = tmp_path / "corpus.jsonl.gz"
        chunk = b"a" * (16 << 20)
        with gzip.open(path, "wb", compresslevel=9) as fh:
            fh.write(b'{"_id": "d", "text": "')
            for _ in range(64):
                fh.write(chunk)
        code = f"benchmarks.datasets.beir.read_corpus(Path({str(path)!r}))"
    elif case == "dev zero":  # a document folder whose .txt is a link to /dev/zero, and a corpus that is one
        root = tmp_path / "docs"
        root.mkdir()
        (root / "a.md").write_text("# A\n\ntext\n", encoding="utf-8")
        (root / "zero.txt").symlink_to("/dev/zero")
        (tmp_path / "corpus.jsonl").symlink_to("/dev/zero")
        code = (f"docs = benchmarks.datasets.files.read_documents(Path({str(root)!r}))\nassert [d.id for d in docs] == ['a.md']\n"
                f"benchmarks.datasets.beir.read_corpus(Path({str(tmp_path / 'corpus.jsonl')!r}))")
    elif case == "yaml bomb":
        root = tmp_path / "docs"
        root.mkdir()
        (root / "bomb.md").write_text(f"---\n{BILLION_LAUGHS}---\n# Bomb\n", encoding="utf-8")
        (root / "a.md").write_text("# A\n\ntext\n", encoding="utf-8")
        code = f"docs = benchmarks.datasets.files.read_documents(Path({str(root)!r}))\nassert [d.id for d in docs] == ['a.md']\nprint('ok')"
    else:
        path = tmp_path / "traces.json"
        path.write_text('{"resourceSpans": ' + "[" * 1_000_000 + "]" * 1_000_000 + "}", encoding="utf-8")
        code = f"benchmarks.diagnosis.traces.read_traces(Path({str(path)!r}))"
    res = _limited(code, tmp_path)
    assert "MemoryError" not in res.stdout and "Traceback" not in res.stderr, res.stdout + res.stderr
    if case == "yaml bomb":
        assert res.returncode == 0 and "ok" in res.stdout, res.stdout + res.stderr
    else:
        assert res.returncode == 2 and "DataError" in res.stdout, res.stdout + res.stderr
        assert {"single-line document": "line longer than 64 MB", "gzip bomb": "line longer than 64 MB",
                "dev zero": "not a regular file (a character device)",
                "deep json": "JSON nested more than 64 levels"}[case] in res.stdout


# ------------------------------------------------------------------------------------------ fuzzers
# OTLP's protobuf-JSON AnyValue (opentelemetry-proto, common/v1/common.proto: string_value, bool_value,
# int_value, double_value, array_value, kvlist_value, bytes_value; JSON mapping writes 64-bit ints as strings)
_ATTR_KEYS = ["input.value", "openinference.span.kind", "retrieval.documents", "retrieval.documents.0.document.content",
              "retrieval.documents.0.document.id", "retrieval.documents.1.document.content",
              "retrieval.documents.0.document.score", "output.value", "x", ""]


def _any_value():
    from hypothesis import strategies as st

    leaf = st.one_of(
        st.builds(lambda s: {"stringValue": s}, st.text(max_size=12)),
        st.builds(lambda i: {"intValue": i}, st.one_of(st.integers(), st.text(max_size=4), st.none(), st.booleans())),
        st.builds(lambda f: {"doubleValue": f}, st.floats(allow_nan=False)),
        st.builds(lambda b: {"boolValue": b}, st.booleans()),
        st.builds(lambda b: {"bytesValue": b}, st.text(max_size=8)),
        st.none(), st.text(max_size=6), st.integers(), st.just({}), st.just([]),
    )
    return st.recursive(leaf, lambda inner: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(inner, max_size=3)),
        st.builds(lambda vs: {"arrayValue": vs}, st.one_of(st.lists(inner, max_size=2), st.text(max_size=3))),
        st.builds(lambda kv: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in kv]}},
                  st.lists(st.tuples(st.sampled_from(_ATTR_KEYS), inner), max_size=3)),
    ), max_leaves=6)


def _span():
    from hypothesis import strategies as st

    attr = st.one_of(st.builds(lambda k, v: {"key": k, "value": v}, st.sampled_from(_ATTR_KEYS), _any_value()),
                     st.text(max_size=4), st.none(), st.integers())
    return st.fixed_dictionaries({}, optional={
        "name": st.text(max_size=8), "spanId": st.one_of(st.text(max_size=8), st.integers(), st.none()),
        "attributes": st.one_of(st.lists(attr, max_size=6), st.dictionaries(st.sampled_from(_ATTR_KEYS), _any_value(), max_size=4),
                                st.text(max_size=4), st.none()),
        "context": st.one_of(st.fixed_dictionaries({"span_id": st.text(max_size=6)}), st.text(max_size=3), st.none())})


def _export():
    from hypothesis import strategies as st

    spans = st.one_of(st.lists(_span(), max_size=3), st.text(max_size=3), st.none(), st.integers())
    scope = st.one_of(st.fixed_dictionaries({"spans": spans}), st.text(max_size=3), st.none())
    resource = st.one_of(st.fixed_dictionaries({"scopeSpans": st.one_of(st.lists(scope, max_size=2), st.text(max_size=3))}),
                         st.fixed_dictionaries({"instrumentationLibrarySpans": st.lists(scope, max_size=2)}),
                         st.text(max_size=3), st.integers())
    word = st.text(alphabet="abc ", min_size=1, max_size=6).filter(str.strip)
    good_span = st.builds(lambda q, t, extra: {"attributes": [
        {"key": "input.value", "value": {"stringValue": q}},
        {"key": "retrieval.documents.0.document.content", "value": {"stringValue": t}}, *extra]},
        word, word, st.lists(st.builds(lambda k, v: {"key": k, "value": v}, st.sampled_from(_ATTR_KEYS[5:]), _any_value()),
                             max_size=2))
    good_record = st.builds(lambda q, t: {"query": q, "contexts": [{"id": "c1", "text": t}]}, word, word)
    return st.one_of(st.fixed_dictionaries({"resourceSpans": st.one_of(st.lists(resource, max_size=2), st.text(max_size=3))}),
                     good_record, good_record, good_span,
                     st.builds(lambda sp: {"resourceSpans": [{"scopeSpans": [{"spans": sp}]}]}, st.lists(st.one_of(good_span, _span()), max_size=3)),
                     _span(),
                     st.fixed_dictionaries({"query": st.one_of(st.text(max_size=8), st.none(), st.integers()),
                                            "contexts": st.one_of(st.lists(st.one_of(
                                                st.fixed_dictionaries({"id": st.one_of(st.text(max_size=3), st.integers()),
                                                                       "text": st.one_of(st.text(max_size=8), st.none())}),
                                                st.text(max_size=3)), max_size=3), st.text(max_size=3))}))


def test_trace_reader_fuzz_raises_data_errors_naming_the_file_only():
    """Random OTLP exports, spans and trace records (wrong types at every level, intValue junk, strings where
    lists belong), one per line or as one document: either traces come back or a DataError naming the file."""
    import tempfile

    from hypothesis import HealthCheck, event, given, settings, strategies as st

    from benchmarks.errors import DataError
    from benchmarks.diagnosis.traces import read_traces

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(objs=st.lists(_export(), min_size=1, max_size=3), one_document=st.booleans())
    def fuzz(objs, one_document):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("traces.json" if one_document else "traces.jsonl")
            path.write_text(json.dumps(objs[0]) if one_document else "\n".join(json.dumps(o) for o in objs), encoding="utf-8")
            try:
                traces, report = read_traces(path)
            except DataError as err:
                assert str(path) in str(err), err
                event("error")
                return
            event("read")
            assert traces and report.retriever_spans + report.formats["trace record"] == len(traces)
            for t in traces:
                assert isinstance(t.query, str) and t.query.strip() == t.query and t.query
                assert all(isinstance(c["text"], str) for c in t.contexts)

    fuzz()


def test_trace_reader_fuzz_finds_every_retriever_span_of_a_well_formed_export():
    """Well-formed OTLP exports with a random mix of retriever and other spans: every retriever span comes
    back as a trace with its documents in index order, every other span is counted as skipped."""
    import tempfile

    from hypothesis import given, settings, strategies as st

    from benchmarks.diagnosis.traces import read_traces

    def attrs(query, docs):
        out = [{"key": "openinference.span.kind", "value": {"stringValue": "RETRIEVER" if docs else "LLM"}},
               {"key": "input.value", "value": {"stringValue": query}}]
        for i, (text, score) in enumerate(docs):
            out += [{"key": f"retrieval.documents.{i}.document.content", "value": {"stringValue": text}},
                    {"key": f"retrieval.documents.{i}.document.id", "value": {"stringValue": f"d{i}"}},
                    {"key": f"retrieval.documents.{i}.document.score", "value": {"doubleValue": score}}]
        return out

    words = st.text(alphabet="abcdefgh ", min_size=1, max_size=20).filter(str.strip)
    doc = st.tuples(words, st.floats(0, 1))
    span = st.tuples(words, st.lists(doc, max_size=12))

    @settings(max_examples=60, deadline=None)
    @given(groups=st.lists(st.lists(span, min_size=1, max_size=4), min_size=1, max_size=3))
    def fuzz(groups):
        n_ret = sum(1 for g in groups for _, d in g if d)
        if not n_ret:
            return
        export = {"resourceSpans": [{"scopeSpans": [{"spans": [
            {"spanId": f"s{i}-{j}", "attributes": attrs(q, d)} for j, (q, d) in enumerate(g)]}]} for i, g in enumerate(groups)]}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "export.json"
            path.write_text(json.dumps(export), encoding="utf-8")
            traces, report = read_traces(path)
        expected = [(q.strip(), [t for t, _ in d]) for g in groups for q, d in g if d]
        assert [(t.query, [c["text"] for c in t.contexts]) for t in traces] == expected
        assert sum(report.skipped.values()) == sum(1 for g in groups for _, d in g if not d)
        assert report.spans == sum(len(g) for g in groups) and report.retriever_spans == len(expected)

    fuzz()


_FORMATS_TRIED = [".md", ".mdx", ".rst", ".txt", ".html", ".pdf", ".docx", ".pptx", ".xlsx", ".epub", ".csv", ""]
_META_VALUES = ["2024-01-01", "banana", "false", "true", "\"false\"", "1", "2", "[1, 2]", "{a: 1}", "", "null",
                "2024-13-45", "self", "other.md", "&a [*a]"]


def _folder_entry():
    from hypothesis import strategies as st

    name = st.text(alphabet="abcdef", min_size=1, max_size=4)
    kind = st.sampled_from(["text", "front_matter", "bytes", "empty", "link_in", "link_out", "link_dir", "fifo", "hidden", "sub"])
    meta = st.dictionaries(st.sampled_from(["title", "effective_date", "deprecated", "supersedes", "superseded_by", "version"]),
                           st.sampled_from(_META_VALUES), max_size=3)
    return st.tuples(name, st.sampled_from(_FORMATS_TRIED), kind, meta, st.binary(max_size=60), st.text(max_size=60))


def test_document_folder_fuzz_accounts_for_every_file_or_names_the_problem():
    """Random folders (text, junk bytes in .pdf/.docx, front matter with bad dates, booleans, self and unknown
    supersedes, recursive aliases, links inside and outside, a link to a folder, named pipes, hidden files,
    subfolders): read_documents returns documents with read + skipped + unsupported = every visible entry,
    or raises a DataError naming the folder or a file in it — never another exception, never a hang."""
    import tempfile

    from hypothesis import HealthCheck, event, given, settings, strategies as st

    from benchmarks.datasets.files import read_documents
    from benchmarks.errors import DataError

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(entries=st.lists(_folder_entry(), min_size=1, max_size=8), strict=st.booleans())
    def fuzz(entries, strict):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "docs"
            root.mkdir()
            outside = Path(tmp) / "outside.md"
            outside.write_text("# Outside\n\ntext\n", encoding="utf-8")
            visible = set()
            for i, (stem, ext, kind, meta, raw, text) in enumerate(entries):
                name = f"{stem}{i}{ext}"
                where = root / "sub" if kind == "sub" else root
                where.mkdir(exist_ok=True)
                path = where / (f".{name}" if kind == "hidden" else name)
                if kind in ("text", "hidden", "sub"):
                    path.write_text(f"# {stem}\n\n{text}\n", encoding="utf-8")
                elif kind == "front_matter":
                    fm = "".join(f"{k}: {v}\n" for k, v in meta.items()).replace("self", name)
                    path.write_text(f"---\n{fm}---\n# {stem}\n\n{text}\n", encoding="utf-8")
                elif kind == "bytes":
                    path.write_bytes(raw)
                elif kind == "empty":
                    path.write_bytes(b"")
                elif kind == "link_in":
                    targets = [p for p in root.iterdir() if p.is_file() and not p.is_symlink()]
                    path.symlink_to(targets[0] if targets else outside)
                elif kind == "link_out":
                    path.symlink_to(outside)
                elif kind == "link_dir":
                    path.symlink_to(Path(tmp))
                elif kind == "fifo":
                    os.mkfifo(path)
                if kind != "hidden":
                    visible.add(path.relative_to(root).as_posix())
            notes: dict[str, int] = {}
            try:
                docs = read_documents(root, strict=strict, notes=notes)
            except DataError as err:
                assert str(root) in str(err), err
                event("error")
                return
            event(f"read {min(len(docs), 2)}+ docs, strict={strict}")
            assert notes["files_read"] == len(docs)
            assert notes["files_read"] + notes["files_skipped"] + notes["files_unsupported"] == len(visible)
            assert {d.id for d in docs} <= visible
            for d in docs:
                assert isinstance(d.metadata.get("deprecated", False), bool)
                assert d.metadata.get("effective_date") is None or len(d.metadata["effective_date"]) == 10

    fuzz()


# ------------------------------------------------------------------------------------------ round 3 (#35)
@pytest.mark.parametrize("where", ["corpus", "query", "id"])
def test_a_lone_surrogate_is_an_error_naming_the_file_and_line(tmp_path, capsys, home, where):
    """#35: a JSON escape such as \\ud800 (half a surrogate pair) in a document, a query or an id was a
    UnicodeEncodeError traceback when hashed or stored; now one line naming the file and line, exit 2."""
    corpus = [dict(d) for d in CORPUS]
    queries_path = tmp_path / "ds"
    folder = beir_folder(queries_path, corpus=corpus)
    target = folder / ("queries.jsonl" if where == "query" else "corpus.jsonl")
    lines = target.read_text(encoding="utf-8").splitlines()
    if where == "id":
        lines[1] = lines[1].replace('"_id": "', '"_id": "\\ud800', 1)
    else:
        lines[1] = lines[1].replace('"text": "', '"text": "bad \\udc80 text ', 1)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, err = rbench(["dataset=beir", f"dataset.path={folder}"], capsys, home)
    assert_clear_error(code, err, rf"{target.name}:2: a string holds \\u(d800|dc80), half of a UTF-16 surrogate pair")


def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path, capsys, home):
    """#35: a file named in Latin-1 in a documents folder was a UnicodeEncodeError traceback; now it is skipped,
    said with its name escaped, and the rest runs."""
    import os

    root = tmp_path / "docs"
    root.mkdir()
    (root / "leave.md").write_text("# Leave\n\nEmployees get 25 days of annual leave.\n", encoding="utf-8")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.md"), "wb") as fh:
        fh.write(b"# Cafe\n\nOpening hours are 8 to 5.\n")
    code, err = rbench(["dataset=files", f"dataset.path={root}", f"dataset.queries={_queries(tmp_path / 'q.jsonl')}"],
                       capsys, home)
    assert code == 0 and "Traceback" not in err, err
    assert "caf\\xe9.md: its name is not UTF-8 (rename the file)" in err


def test_a_qrels_line_with_a_tab_inside_an_id_is_not_read_as_trec(tmp_path):
    """#35: a header-less BEIR qrels file whose line holds a tab inside the document id has four columns and was
    read as TREC (another document judged, nDCG 0, no word); TREC's second column is the iteration (0 or Q0)."""
    from benchmarks.datasets.beir import read_qrels
    from benchmarks.errors import DataError

    qrels = tmp_path / "test.tsv"
    qrels.write_text("q1\tdoc\twith tab\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test.tsv:1: column 2 of a TREC qrels line is the iteration \(0 or Q0\), got "
                                        r"'doc': is this a BEIR qrels line .* with a tab inside an id\?"):
        read_qrels(qrels)
    qrels.write_text("q1 0 d1 1\nq1 Q0 d2 2\n", encoding="utf-8")  # real TREC qrels still read
    assert read_qrels(qrels)[0] == {"q1": {"d1": 1, "d2": 2}}


def test_a_key_no_component_reads_is_an_error_before_anything_runs(tmp_path, capsys, home):
    """#35: '+retreiver.k1=0.9' (a misspelt group, with the '+' Hydra suggests) was accepted, ignored, and the run
    named after it; now a config error naming the key and the close name, exit 2, nothing run."""
    code, err = rbench(["+retreiver.k1=0.9"], capsys, home)
    assert_clear_error(code, err, r"retreiver: no component reads this key; did you mean retriever\?")


@pytest.mark.parametrize("state", ["missing", "being created"])
def test_a_reader_never_creates_or_migrates_a_store(tmp_path, state):
    """#35: rbench-report (or rbench-audit) pointed at a store a starting sweep is creating ran MLflow's migrations
    itself and the sweep's first point died (alembic, 'disk I/O error'); with no store it created one. A reader now
    says there is no store yet, in one line, and leaves the file as it found it."""
    store = tmp_path / "results" / "mlflow.db"
    store.parent.mkdir()
    if state == "being created":
        import sqlite3

        sqlite3.connect(store).close()  # the file exists, its tables do not yet
    before = store.read_bytes() if store.exists() else None
    bin_ = Path(sys.executable).parent
    for tool in (["rbench-report", "--experiment", "rbench"], ["rbench-audit", "--experiment", "rbench"]):
        out = subprocess.run([str(bin_ / tool[0]), *tool[1:], "--tracking-uri", f"sqlite:///{store}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-1500:]
        assert f"no MLflow store at {store} yet: run rbench first (nothing was created)" in out.stderr
        assert (store.read_bytes() if store.exists() else None) == before


def test_a_dataset_name_the_generated_set_does_not_read_is_an_error(tmp_path, capsys, home):
    """#35: 'rbench dataset.name=scifact' (dataset=beir forgotten) ran the generated enterprise set and logged, named
    and reported it as scifact-seed0, exit 0; now a config error saying what to write, before anything runs."""
    code, err = rbench(["dataset.name=scifact"], capsys, home)
    assert_clear_error(code, err, r"dataset.name='scifact' is not read by dataset=enterprise .* dataset=beir "
                                  r"dataset.name=scifact")


@pytest.mark.parametrize("override,expected", [
    ("+decomposer.hops=3", r"decomposer.hops: not an option of NoDecomposer, the decomposer chosen: nothing would read it"),
    ("+retriever.foo=1", r"retriever.foo: not an option of BM25Retriever, the retriever chosen: nothing would read it"),
])
def test_a_key_under_a_group_whose_component_does_not_take_it_is_an_error(tmp_path, capsys, home, override, expected):
    """#35: a '+key' under a group whose chosen component has no such option (decomposer=none with hops) was an
    instantiation error naming a class's __init__; now a config error naming the key, before anything runs."""
    code, err = rbench([override], capsys, home)
    assert_clear_error(code, err, expected)


@pytest.mark.parametrize("argv,expected", [
    (["engine=slurm", "engine.cluster=slurm"], r"engine=slurm: no SLURM here"),
    (["engine=ray", "engine.address=127.0.0.1:1"], r"engine.address: cannot reach Ray at 127.0.0.1:1 \(nothing answers"),
    (["retriever.index.kind=ivf", "retriever.index.ivf_nlist=5000"], r"retriever.index.ivf_nlist=5000: more IVF lists than the \d+ passages"),
])
def test_an_engine_or_index_that_cannot_work_is_one_line_through_rbench(tmp_path, capsys, home, argv, expected, monkeypatch):
    """#35 through the entry point: no SLURM ('Could not detect srun' traceback), a Ray address nothing listens on
    (minutes of retries), more IVF lists than passages (faiss's C++ assertion): exit 2, one line naming the key."""
    monkeypatch.setattr("shutil.which", lambda name: None)  # no SLURM on this machine, whatever it has
    code, err = rbench(["retriever=dense_static", "dataset.limit=2", *argv], capsys, home)
    assert_clear_error(code, err, expected)
