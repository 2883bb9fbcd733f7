"""#33: documents as people write them (evidence found where the user copied it, more source formats, faithful
text) and retrieval in the document's own language.

The PDF is made by reportlab (``tests/fixtures/documents/make_pdfs.py``: two columns, DejaVu ligature glyphs,
line-end hyphenation, a table set larger than the body, reportlab's default ``/Title (anonymous)``); the DOCX by
python-docx; the rest are written the way their tools' users write them.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from chunkers.types import Chunk, Query
from benchmarks.datasets.extract import extract, looks_like_rst
from benchmarks.datasets.files import FilesLoader, locate, read_documents, read_queries
from benchmarks.diagnosis.matching import Matcher
from benchmarks.diagnosis.signals import answer_claims
from benchmarks.errors import DataError
from retrievers.bm25 import BM25Retriever
from retrievers.text import Tokenizer, detect, detect_corpus

DOCS = Path(__file__).resolve().parent / "fixtures" / "documents"

RST = """\
Security guide
==============

.. note:: Read this first.

Transport
---------

All traffic uses **TLS 1.3**; see :ref:`the setup <setup>` and ``http://localhost:8080``.
Details are in `the RFC <https://www.rfc-editor.org/rfc/rfc8446>`_.

=====  =====
Port   Use
=====  =====
443    HTTPS
8080   API
=====  =====
"""
MDX = """\
---
title: Install
---
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

# Install

<Tabs>
<TabItem value="npm" label="npm">

Run **npm install** to get it, then open [the dashboard](https://example.com/dash).

</TabItem>
</Tabs>

{/* a comment */}

```js
import x from 'y';
```
"""
HUGO = """\
+++
title = "Release notes"
version = 3
effective_date = 2025-01-02
+++
# Notes {#notes}

## About HTTPS { #about-https }

Use `http://localhost:8080` for the API; _unpaid_ leave is [Paid Family Leave](https://example.com/pfl) now.
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of real formats: reStructuredText (.rst, and a .txt written in it), MDX, Hugo markdown with TOML
    front matter, a DOCX with a table (python-docx), the reportlab PDF."""
    import docx

    root = tmp_path / "docs"
    root.mkdir()
    (root / "security.rst").write_text(RST, encoding="utf-8")
    (root / "security.txt").write_text(RST.replace("Security guide", "Transport security"), encoding="utf-8")
    (root / "install.mdx").write_text(MDX, encoding="utf-8")
    (root / "notes.md").write_text(HUGO, encoding="utf-8")
    d = docx.Document()
    d.add_heading("Asset register", 1)
    d.add_paragraph("The register lists every server.")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Host", "GUID", "Owner"), ("db-01", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "Data team"),
                             ("web-02", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "Web team")]):
        for c, v in enumerate(row):
            table.cell(r, c).text = v
    d.add_paragraph("Servers are patched monthly.")
    d.save(root / "register.docx")
    shutil.copy(DOCS / "two_column.pdf", root / "handbook.pdf")
    (root / "help.html").write_text(
        "<html><head><title>Help centre</title></head><body><nav>Home | Docs</nav><h1>Help centre</h1>"
        "<p>Reset a password from the <b>account page</b>; links expire after <em>24&nbsp;hours</em>.</p>"
        "</body></html>", encoding="utf-8")
    return root


def test_formats_read_with_titles_and_no_markup(folder):
    docs = {d.id: d for d in read_documents(folder)}
    assert set(docs) == {"security.rst", "security.txt", "install.mdx", "notes.md", "register.docx", "handbook.pdf",
                         "help.html"}
    assert docs["security.rst"].title == "Security guide" and docs["security.txt"].title == "Transport security"
    assert "## Transport" in docs["security.rst"].text and "443 | HTTPS" in docs["security.rst"].text
    assert ":ref:" not in docs["security.rst"].text and "==" not in docs["security.rst"].text
    mdx = docs["install.mdx"].text
    assert "Run npm install to get it" in mdx and "import Tabs" not in mdx and "<TabItem" not in mdx
    assert "import x from 'y';" in mdx  # code is kept as written
    notes = docs["notes.md"]
    assert notes.title == "Release notes" and notes.metadata["version"] == 3 and "+++" not in notes.text
    assert "## About HTTPS\n" in notes.text + "\n" and "{ #about-https }" not in notes.text and "# Notes\n" in notes.text
    assert "http://localhost:8080" in notes.text  # a code span's URL is code, not a link to drop
    register = docs["register.docx"].text
    assert register.index("The register lists") < register.index("db-01 | 3f2504e0-4f89-11d3-9a0c-0305e82c3301 | Data team") \
        < register.index("Servers are patched")
    pdf = docs["handbook.pdf"]
    assert pdf.title == "Travel Handbook"  # not reportlab's "(anonymous)"
    assert "Office" in pdf.text and "Begriff" in pdf.text and "adipiscing" in pdf.text and "ﬁ" not in pdf.text
    assert not [ln for ln in pdf.text.splitlines() if ln.startswith("#") and ln != "# Travel Handbook"]  # no table row
    assert pdf.text.index("budget owner") < pdf.text.index("daily meal allowance")  # left column, then right


def test_rst_in_txt_is_told_from_plain_text():
    assert looks_like_rst(RST)
    assert not looks_like_rst("Notes\n\nJust a line.\n- a list\n")


# (document, evidence as a person copies it from the source or from the visible text)
COPIED = [
    ("notes.md", "_unpaid_ leave is [Paid Family Leave](https://example.com/pfl) now"),
    ("notes.md", "`http://localhost:8080`"),
    ("security.rst", "All traffic uses **TLS 1.3**; see :ref:`the setup <setup>`"),
    ("security.rst", "Details are in `the RFC <https://www.rfc-editor.org/rfc/rfc8446>`_."),
    ("install.mdx", "Run **npm install** to get it, then open [the dashboard](https://example.com/dash)."),
    ("register.docx", "3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
    ("handbook.pdf", "The staff handbook deﬁnes the Begriﬀ of a business trip"),
    ("handbook.pdf", "consectetur adip-\niscing elit"),
    ("handbook.pdf", "consectetur adipiscing elit"),
    ("handbook.pdf", "The daily meal allowance is EUR 60 for trips inside the EU"),
    ("help.html", "Reset a password from the <b>account page</b>; links expire after <em>24&nbsp;hours</em>."),
]


def test_evidence_copied_from_the_source_loads(folder, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"text": f"question {i}", "relevant": [d], "evidence": [ev]}) + "\n"
                               for i, (d, ev) in enumerate(COPIED)), encoding="utf-8")
    ds = FilesLoader(path=str(folder), queries=str(queries)).load()
    docs = {d.id: d for d in ds.corpus}
    for q, (doc, ev) in zip(ds.queries, COPIED):
        (span,) = q.metadata["evidence"]
        found = docs[doc].text[span["start"]:span["end"]]
        assert span["doc_id"] == doc and found, (doc, ev)  # offsets into the extracted text
        assert locate(docs[doc].text, ev) == (span["start"], span["end"])


def test_evidence_not_in_the_document_shows_the_closest_passage(folder, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"text": "q", "relevant": ["notes.md"], "evidence": ["Use http://localhost:8081"]}) + "\n")
    docs = read_documents(folder)
    with pytest.raises(DataError, match=r"q.jsonl:1: evidence 'Use http://localhost:8081' is in none of its relevant "
                                        r"documents \(notes.md\); the closest passage, in notes.md: '.*Use http://localhost:8080"):
        read_queries(queries, docs)


def test_every_committed_query_file_loads():
    root = Path(__file__).resolve().parent.parent
    handbook = root / "benchmarks" / "data" / "handbook"
    ds = FilesLoader(path=str(handbook), queries=str(handbook / "queries.jsonl")).load()
    assert ds.queries and ds.notes["evidence_spans"] > 0


def test_pypdf_repair_notes_go_to_the_log_not_the_terminal(tmp_path, capfd, caplog):
    broken = tmp_path / "broken.pdf"
    data = (DOCS / "two_column.pdf").read_bytes()
    at = data.rindex(b"startxref")
    broken.write_bytes(data[:at] + b"startxref\n99\n%%EOF\n")  # a wrong xref offset: pypdf repairs and says so
    with caplog.at_level(logging.DEBUG, logger="benchmarks.datasets.extract"):
        out = extract(broken)
    assert "Travel Handbook" in out.text
    assert capfd.readouterr().err == ""
    assert any("pypdf" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------ languages
MULTI = {"ja/remote.md": "在宅勤務は週に3日まで認められています。申請は前日までに上長に提出してください。",
         "zh/leave.md": "员工每年享有十五天带薪年假。未休年假可以顺延到下一年。",
         "de/urlaub.md": "Mitarbeiter erhalten 30 Tage Urlaub pro Kalenderjahr. Der Resturlaub verfällt am 31. März.",
         "en/leave.md": "Employees get 25 days of annual leave per calendar year.",
         "en/vpn.md": "The VPN client certificate expires after one year; request a new one on the portal."}
QUESTIONS = [Query("ja", "在宅勤務は週に何日できますか"), Query("zh", "员工每年有多少天年假？"),
             Query("de", "Wie viele Urlaubstage bekommt ein Mitarbeiter?"), Query("en", "annual leave days")]


def _retrieve(language: str) -> dict[str, list[str]]:
    chunks = [Chunk(f"{d}#0", d, "", t, 0, len(t)) for d, t in MULTI.items()]
    r = BM25Retriever(language=language)
    r.index(chunks)
    run = r.search(QUESTIONS, top_k=3)
    return {q: [c.split("#")[0] for c in hits] for q, hits in run.items()}, r


def test_a_chinese_a_japanese_and_a_german_query_retrieve_their_document():
    got, r = _retrieve("auto")
    assert got["ja"][0] == "ja/remote.md" and got["zh"][0] == "zh/leave.md" and got["de"][0] == "de/urlaub.md"
    assert got["en"][0] == "en/leave.md"
    assert r.stats()["lang_en"] == 0.4 and r.stats()["lang_ja"] == 0.2  # the corpus's language mix
    english, _ = _retrieve("en")  # the English analysis reads a CJK run as one token: nothing matches
    assert english["ja"] == [] and english["zh"] == []


def test_an_analysis_that_cannot_read_the_corpus_is_a_warning_naming_the_language(capsys):
    chunks = [Chunk(f"d{i}", f"d{i}", "", t, 0, len(t)) for i, t in enumerate(
        ["在宅勤務は週に3日まで認められています。", "通信費は月額3000円まで支給されます。", "申請は前日までに提出してください。"])]
    r = BM25Retriever(language="en")
    r.index(chunks)
    r.search([Query("q", "在宅勤務")], top_k=3)
    err = capsys.readouterr().err
    assert "retriever.language=en analyses every document as en" in err and "ja 100%" in err
    assert "retriever.language=auto" in err


def test_detection_keeps_a_corpus_majority_language_against_quoted_words():
    texts = {f"en{i}": "The committee met on Monday and agreed on the new budget for the year." for i in range(5)}
    texts["quote"] = "I Was All His (German: Ich war ihm hörig) is a 1958 West German drama film directed by Wolfgang Becker."
    texts["de"] = "Der Ausschuss hat am Montag getagt und den neuen Haushalt für das Jahr beschlossen, wie es die Satzung will."
    got = detect_corpus(texts)
    assert got["quote"] == "en" and got["de"] == "de"
    assert detect("员工每年有多少天年假") == "zh" and detect("직원은 연차 휴가를 며칠 받나요?") == "ko"


def test_cjk_bigrams_and_per_language_stemming():
    tok = Tokenizer(language="auto")
    assert tok("在宅勤務") == ["在宅", "宅勤", "勤務"]
    assert tok("Urlaubstage", "de") == ["urlaubstag"] and tok("running", "en") == ["run"]
    assert Tokenizer()("在宅勤務は") == ["在宅勤務は"]  # language=en: as before, one token


def test_reference_matching_and_signals_in_the_texts_language():
    m = Matcher()
    ok, how = m.reached("在宅勤務は週3日まで認められる", ["在宅勤務は週に3日まで認められています。申請は前日までに。"])
    assert ok, how  # matched by characters, not one run against another
    assert not m.reached("在宅勤務は週5日", ["通信費は月額3000円まで支給されます。"])[0]
    assert answer_claims("Mitarbeiter erhalten dreißig Tage Urlaub pro Kalenderjahr.") == []  # German nouns: no names
    assert answer_claims("Employees must ask Maria Schmidt in Human Resources.") == ["Maria Schmidt", "Human Resources"]


def test_the_multilingual_benchmark_builds_parallel_known_item_sets(tmp_path):
    """benchmarks/scripts/multilingual.py on a tldr-pages-shaped tree: only commands every language describes,
    the description removed from the page it is the query for."""
    from benchmarks.scripts.multilingual import load, main, split_page

    page = "# tar\n\n> Archivierungstool.\n> Weitere Informationen: <https://www.gnu.org/software/tar>.\n\n- Erstelle ein Archiv:\n\n`tar cf {{ziel.tar}}`\n"
    query, body = split_page(page)
    assert query == "Archivierungstool." and "Archivierungstool" not in body and body.startswith("# tar")
    for folder, pages in {"pages": {"tar": "> Archiving utility.", "ls": "> List files.", "only-en": "> Only here."},
                          "pages.de": {"tar": "> Archivierungstool.", "ls": "> Dateien auflisten."}}.items():
        (tmp_path / folder / "common").mkdir(parents=True)
        for name, desc in pages.items():
            (tmp_path / folder / "common" / f"{name}.md").write_text(f"# {name}\n\n{desc}\n\n- Example:\n\n`{name}`\n")
    got = load(tmp_path, ("en", "de"))
    assert sorted(got["en"]) == sorted(got["de"]) == ["ls", "tar"]
    assert main(["--tldr", str(tmp_path), "--languages", "en,de", "--out", str(tmp_path / "out" / "ml")]) == 0
    table = (tmp_path / "out" / "ml.md").read_text()
    assert "| German (de) | 2 |" in table and (tmp_path / "out" / "ml.png").stat().st_size > 0


def test_presentations_workbooks_and_ebooks_are_read(tmp_path):
    """#33: .pptx (python-pptx), .xlsx (openpyxl) and .epub (EbookLib), each made by its library: titles, headings,
    tables and notes in order, no table of contents; evidence copied from the visible text is located."""
    import openpyxl
    from ebooklib import epub
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = "Security review 2025"
    slide.placeholders[1].text = "Findings and fixes"
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Findings"
    slide.placeholders[1].text_frame.text = "TLS 1.0 is still enabled on the VPN gateway."
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    for (r, c), v in {(0, 0): "Host", (0, 1): "Issue", (1, 0): "vpn-01", (1, 1): "TLS 1.0"}.items():
        table.cell(r, c).text = v
    slide.notes_slide.notes_text_frame.text = "Ask the network team for a date."
    deck.save(tmp_path / "review.pptx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Allowances"
    for row in (["Region", "Daily allowance (EUR)"], ["Inside the EU", 60], [None, None], ["Elsewhere", 75]):
        sheet.append(row)
    book.properties.title = "Travel allowances"
    book.save(tmp_path / "allowances.xlsx")
    ebook = epub.EpubBook()
    ebook.set_identifier("onboarding-1")
    ebook.set_title("Onboarding guide")
    ebook.set_language("en")
    chapters = []
    for name, body in (("Welcome", "Your first week starts with a laptop setup."), ("Accounts", "Request VPN access on day two.")):
        ch = epub.EpubHtml(title=name, file_name=f"{name}.xhtml", lang="en")
        ch.content = f"<h1>{name}</h1><p>{body}</p>"
        ebook.add_item(ch)
        chapters.append(ch)
    ebook.toc, ebook.spine = tuple(chapters), ["nav", *chapters]
    ebook.add_item(epub.EpubNcx())
    ebook.add_item(epub.EpubNav())
    epub.write_epub(str(tmp_path / "onboarding.epub"), ebook)

    docs = {d.id: d for d in read_documents(tmp_path)}
    pptx, xlsx, book_ = docs["review.pptx"], docs["allowances.xlsx"], docs["onboarding.epub"]
    assert pptx.title == "Security review 2025" and pptx.text.count("Security review 2025") == 1
    assert pptx.text.index("## Findings") < pptx.text.index("vpn-01 | TLS 1.0") < pptx.text.index("Ask the network team")
    assert xlsx.title == "Travel allowances" and "## Allowances" in xlsx.text and "Inside the EU | 60\nElsewhere | 75" in xlsx.text
    assert book_.title == "Onboarding guide" and book_.text.startswith("# Welcome") and "1." not in book_.text
    assert locate(pptx.text, "TLS 1.0 is still enabled on the VPN gateway.") and locate(xlsx.text, "Elsewhere | 75")
