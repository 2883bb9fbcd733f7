"""Documents as people write them (#21): files built here with the quirks real ones have — PDFs whose metadata
title is a placeholder ("Untitled", "Microsoft Word - x.doc"), bold body lines and fax numbers, DOCX files saved
with "Word Document" as their title, markdown from static-site repositories (Liquid tags, Hugo shortcodes,
inline HTML, full URLs), curly apostrophes. Titles and headings must come out right and every file must be
accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.datasets.extract import extract, placeholder, render_markdown


def agency_pdf(path: Path, meta_title: str | None) -> Path:
    """A report as word processors export it: a big title on page one, 14 pt headings over 11 pt body text, a bold
    11 pt line in the body, a fax number and a page number in the heading size."""
    from fpdf import FPDF

    pdf = FPDF()
    if meta_title is not None:
        pdf.set_title(meta_title)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "Remote Work Guide", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, "This guide explains how staff work from home and how equipment is provided.",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 9, "Eligibility", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, "Staff may work remotely up to three days a week once probation ends.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, "Note that managers approve each arrangement", new_x="LMARGIN", new_y="NEXT")  # bold body text
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 9, "Fax: +1 202 555 0147", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 9, "2", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 9, "Equipment", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.multi_cell(0, 6, "A laptop and a monitor are provided; a desk allowance of EUR 300 is paid once.",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


@pytest.mark.parametrize("meta_title", [None, "Untitled", "Microsoft Word - remote_work_v3.doc", "remote-work.pdf"])
def test_a_pdf_with_a_placeholder_title_is_titled_by_its_largest_first_page_text(tmp_path, meta_title):
    got = extract(agency_pdf(tmp_path / "remote-work.pdf", meta_title))
    assert got.metadata["title"] == "Remote Work Guide"
    headings = [ln for ln in got.text.split("\n") if ln.startswith("#")]
    assert headings == ["# Remote Work Guide", "## Eligibility", "## Equipment"], headings
    assert "Note that managers approve each arrangement" in got.text  # bold alone is no heading
    assert "Fax: +1 202 555 0147" in got.text and "# Fax" not in got.text  # nor is a fax number in heading size


def test_a_pdf_keeps_a_real_metadata_title(tmp_path):
    assert extract(agency_pdf(tmp_path / "r.pdf", "Remote Work Guide 2026")).metadata["title"] == "Remote Work Guide 2026"


def test_placeholder_titles():
    for t in ("", "Untitled", "untitled document", "Microsoft Word - policy.doc", "Word Document", "Document1",
              "scan_0001.pdf", "Title"):
        assert placeholder(t), t
    assert placeholder("Notes.md", Path("notes.md")) and not placeholder("Onboarding", Path("onboarding.docx"))
    for t in ("Travel Policy", "VPN guide", "Remote Work Guide 2026"):
        assert not placeholder(t, Path("x.pdf")), t


def test_a_docx_saved_as_word_document_is_titled_by_its_heading_or_first_paragraph(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = "Word Document"
    d.add_heading("Expense claims", level=1)
    d.add_paragraph("Claims are filed within 30 days.")
    d.save(tmp_path / "expenses.docx")
    got = extract(tmp_path / "expenses.docx")
    assert "title" not in got.metadata and got.heading == "Expense claims"
    d = docx.Document()  # no title, no heading styles: the first paragraph names it
    d.add_paragraph("Parking permits")
    d.add_paragraph("Permits are renewed every January at the front desk.")
    d.save(tmp_path / "parking.docx")
    assert extract(tmp_path / "parking.docx").metadata["title"] == "Parking permits"


SITE_PAGE = """---
title: Leave policy
layout: page
---
{% include banner.html %}
# Annual leave

Staff get **25 days** of leave; see the [HR portal](https://hr.example.org/leave?id=7) or
<a href="https://intranet.example.org/x">the intranet</a> for the form.
{{< alert type="info" >}}Unused days expire on 31 March.{{< /alert >}}

{% if site.region == "EU" %}
Carry-over needs approval from <span class="role">your manager</span>.
{% endif %}

Read more at https://example.org/policies/leave.html.

| Days | Grade |
|---|---|
| 25 | A |

1. Ask your manager.
2. File the request {{ page.form_id }} in the portal.

<div class="note">
  <p>Public holidays are not counted.</p>
</div>
"""


def test_markdown_is_rendered_to_text_without_template_tags_urls_or_html(tmp_path):
    (tmp_path / "leave.md").write_text(SITE_PAGE, encoding="utf-8")
    got = extract(tmp_path / "leave.md")
    text = got.text
    assert got.metadata["title"] == "Leave policy" and got.heading == "Annual leave"
    for junk in ("{%", "%}", "{{", "}}", "http", "<a", "<span", "<div", "**", "](", "include banner"):
        assert junk not in text, (junk, text)
    for kept in ("Staff get 25 days of leave; see the HR portal or", "the intranet for the form",
                 "Unused days expire on 31 March.", "Carry-over needs approval from your manager.",
                 "25 | A", "1. Ask your manager.", "2. File the request", "Public holidays are not counted."):
        assert kept in " ".join(text.split()) or kept in text, (kept, text)
    assert text.splitlines()[0] == "# Annual leave"


def test_a_folder_of_real_files_through_rbench(tmp_path):
    """Every file accounted for, titles right, and evidence with a curly apostrophe found in straight text."""
    import docx

    from benchmarks.api import run

    root = tmp_path / "docs"
    root.mkdir()
    agency_pdf(root / "remote-work.pdf", "Untitled")
    (root / "leave.md").write_text(SITE_PAGE, encoding="utf-8")
    d = docx.Document()
    d.core_properties.title = "Word Document"
    d.add_heading("Expense claims", level=1)
    d.add_paragraph("A claim needs the manager's approval before payment.")
    d.save(root / "expenses.docx")
    (root / "budget.xlsx").write_bytes(b"PK\x03\x04")  # a damaged workbook: skipped, with its reason
    (root / "slides.key").write_bytes(b"PK\x03\x04")  # Keynote: not a format that is read
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(q) for q in [
        {"_id": "q1", "text": "who approves a claim", "relevant": ["expenses.docx"],
         "evidence": ["the manager\u2019s approval before payment"]},
        {"_id": "q2", "text": "desk allowance", "relevant": ["remote-work.pdf"], "evidence": ["a desk allowance of EUR 300"]},
        {"_id": "q3", "text": "when do unused days expire", "relevant": ["leave.md"], "evidence": ["expire on 31 March"]},
    ]) + "\n", encoding="utf-8")
    store = tmp_path / "store"
    out = run(["dataset=files", f"dataset.path={root}", f"dataset.queries={queries}", f"tracking.uri=sqlite:///{store}/m.db",
               f"tracking.artifact_root={store}/art", f"cache.dir={store}/cache"])
    m = out["metrics"]
    assert m["dataset_files_read"] == 3 and m["dataset_files_unsupported"] == 1 and m["dataset_files_skipped"] == 1
    assert m["queries_scored"] == 3
    from benchmarks.datasets.files import read_documents

    titles = {d.id: d.title for d in read_documents(root)}
    assert titles == {"expenses.docx": "Expense claims", "leave.md": "Leave policy", "remote-work.pdf": "Remote Work Guide"}


def test_render_markdown_keeps_structure_the_chunkers_split_on():
    text = render_markdown("# Travel\n\n## 1. Reservations\n\n1.1 Book through the portal.\n\n- a\n- b\n")
    assert text.split("\n\n") == ["# Travel", "## 1. Reservations", "1.1 Book through the portal.", "- a\n- b"]
