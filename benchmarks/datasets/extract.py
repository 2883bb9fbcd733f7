"""Text and structure out of a team's own files: markdown/MDX/text (with YAML or TOML front matter),
reStructuredText, HTML, PDF, DOCX.

Each reader returns an :class:`Extracted`: the document text with its headings written as markdown
``#`` lines (so ``chunker=sections|auto`` splits on them whatever the source format), the first heading,
and the metadata the file itself declares (front matter, PDF document info). Parsing uses well-kept
libraries — markdown-it-py for markdown (rendered to text: link text kept, URLs, inline HTML and template
tags — Liquid ``{% %}``/``{{ }}``, Hugo shortcodes — dropped), BeautifulSoup for HTML (a real parser, not
regexes), pypdf for PDF (outline entries, and lines set in a font larger than the body's, become headings;
a line that is a number or a fragment never does, nor a run of short lines such as a table's rows; ligatures
as their letters, line-end hyphenation joined), python-docx for DOCX (``Title`` / ``Heading N`` styles; tables in
reading order, one row a line), docutils for reStructuredText (``.rst``, and ``.txt`` written in it: its title,
sections as headings; Sphinx roles as their text), MDX as markdown (imports, exports and JSX tags removed) —
python-pptx for PowerPoint (slide titles as headings, text frames and tables in order), openpyxl for Excel (a
sheet a section, a row a line of its non-empty cells), EbookLib for EPUB (chapters in reading order, read as
HTML) — and PyYAML (``---``) or tomllib (``+++``, Hugo) for front matter. Heading attributes (``{ #id .class }``, MkDocs
and Pandoc) are dropped; code spans are kept as they are. Libraries' warnings (pypdf's repairs) go to the log. A title the file declares is used unless it is a placeholder ("Untitled",
"Microsoft Word - x.doc", "Word Document", the file's own name); then the PDF's largest text on its first
page, the first heading, or (DOCX) the first paragraph.
A reader raises :class:`ExtractError` with a reason a user can act on; the loader lists, counts and skips
such files (or stops, with ``dataset.strict=true``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks.datasets.limits import yaml_load

log = logging.getLogger(__name__)

FORMATS = (".md", ".markdown", ".mdx", ".txt", ".rst", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".epub")


class ExtractError(Exception):
    """A file that cannot be read or parsed; the message is the reason."""


@dataclass
class Extracted:
    text: str
    heading: str | None = None  # the first heading, a title candidate
    metadata: dict[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """Front-matter values as JSON-safe Python: dates as ISO strings, nested containers converted."""
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _tidy(text: str) -> str:
    """Spaces collapsed within lines, at most one blank line between blocks, no trailing space."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", ln).strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_PLACEHOLDER = re.compile(r"^(untitled.*|word document|microsoft (word|powerpoint|excel) - .*|document\d*|"
                          r"presentation\d*|slide \d+|title|no title|\(?anonymous\)?|\(?unknown\)?|\(?untitled\)?|"
                          r".*\.(docx?|pdf|rtf|odt|pptx?|txt|md|mdx|rst|html?))$", re.I)


def placeholder(title: Any, path: Path | None = None) -> bool:
    """A title that says nothing about the document: empty, "Untitled", "(anonymous)" (what some PDF producers
    write), "Microsoft Word - x.doc", "Word Document", "Document1", or a file name with its extension
    (``scan_0001.pdf``, the file's own)."""
    text = " ".join(str(title or "").split())
    if not text or _PLACEHOLDER.match(text):
        return True
    return path is not None and text.lower() == path.name.lower()


def _fragment(line: str) -> bool:
    """A line that cannot be a heading: a number, more digits than letters (a phone or fax number, a date), a
    sentence's middle (starts lower case, ends with a comma or hyphen), or too short."""
    letters = sum(ch.isalpha() for ch in line)
    digits = sum(ch.isdigit() for ch in line)
    return (letters < 2 or digits > letters or line[:1].islower() or line.rstrip()[-1:] in ",;-–"
            or len(line.split()) > 12)


def _first_heading(text: str) -> str | None:
    m = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)
    return m.group(1).strip() if m else None


# ----------------------------------------------------------------------------------------- markdown / text
def _toml_front_matter(raw: str) -> tuple[dict[str, Any], str] | None:
    """TOML between ``+++`` lines at the very top (Hugo) -> (metadata, body); None when there is none."""
    m = re.match(r"\A\+\+\+[ \t]*\r?\n(.*?)^\+\+\+[ \t]*(?:\r?\n|\Z)", raw, re.S | re.M)
    if not m:
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        meta = tomllib.loads(m.group(1))
    except tomllib.TOMLDecodeError as err:
        raise ExtractError(f"front matter is not valid TOML: {err}") from None
    return plain(meta), raw[m.end():]


def split_front_matter(raw: str) -> tuple[dict[str, Any], str]:
    """YAML between ``---`` lines (or TOML between ``+++`` lines) at the very top -> (metadata, body). No front
    matter: ({}, raw)."""
    import yaml

    toml = _toml_front_matter(raw)
    if toml is not None:
        return toml
    m = re.match(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", raw, re.S | re.M)
    if not m:
        return {}, raw
    try:
        meta = yaml_load(m.group(1)) or {}
    except ValueError as err:  # aliases expanding past limits.yaml_values, or a recursive alias
        raise ExtractError(str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (front matter line {mark.line + 2})" if mark is not None else ""
        raise ExtractError(f"front matter is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(meta, dict):
        raise ExtractError(f"front matter must be a YAML mapping (key: value lines), got {type(meta).__name__}")
    return plain(meta), raw[m.end():]


#: template tags of static-site generators: Liquid/Jekyll ``{% ... %}`` and ``{{ ... }}``, Hugo shortcodes
#: ``{{< ... >}}`` / ``{{% ... %}}`` (removed before parsing; text between an opening and closing tag is kept)
_TEMPLATE = re.compile(r"\{\{[<%].*?[%>]\}\}|\{%-?.*?-?%\}|\{\{-?.*?-?\}\}", re.S)
_URL = re.compile(r"<?\bhttps?://[^\s<>()]+>?")
#: a heading's attribute list at its end (MkDocs attr_list, Pandoc): ``{ #id }``, ``{#id .class key=value}``, ``{-}``
_HEADING_ATTRS = re.compile(r"\s*\{\s*(?:[#.][^{}]*|-|\.unnumbered)\s*\}\s*$")


def render_markdown(body: str) -> str:
    """Markdown as the text a reader sees, through markdown-it-py (CommonMark + tables): headings kept as ``#``
    lines, list items as ``- `` / ``N. `` lines, link and image text kept with their URLs dropped, inline and
    block HTML reduced to its text, code kept, template tags removed."""
    from markdown_it import MarkdownIt

    body = _TEMPLATE.sub("", body)
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(body)
    out: list[str] = []
    prefix: list[str] = []  # list markers waiting for the item's first block
    stack: list[tuple[str, int]] = []  # (list type, next number)
    cells: list[str] | None = None

    def inline_text(tok: Any) -> str:
        parts: list[str] = []
        for child in tok.children or []:
            if child.type == "text":
                parts.append(_URL.sub("", child.content) if "http" in child.content else child.content)
            elif child.type == "code_inline":
                parts.append(child.content)  # code as written, URLs included (http://localhost:8080)
            elif child.type in ("softbreak", "hardbreak"):
                parts.append("\n")
            elif child.type == "image":
                parts.append(child.content)  # the alt text
            elif child.type == "html_inline":
                continue  # a tag; the text around it is kept
        return "".join(parts)

    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            prefix.append("#" * int(tok.tag[1]) + " ")
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            start = int(tok.attrs.get("start", 1) or 1) if tok.type == "ordered_list_open" else 0
            stack.append((tok.type, start))
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            stack.pop()
            out.append("")
        elif tok.type == "list_item_open":
            kind, n = stack[-1]
            if kind == "ordered_list_open":
                prefix.append(f"{tok.info or n}. ")
                stack[-1] = (kind, n + 1)
            else:
                prefix.append("- ")
        elif tok.type == "tr_open":
            cells = []
        elif tok.type == "tr_close":
            out.append(" | ".join(c for c in (cells or []) if c))
            cells = None
        elif tok.type == "inline":
            text = inline_text(tok)
            if prefix and prefix[-1].startswith("#"):
                text = _HEADING_ATTRS.sub("", text)  # MkDocs / Pandoc: ## About HTTPS { #about-https }
            if cells is not None:
                cells.append(" ".join(text.split()))
            elif text.strip():
                out.append("".join(prefix) + text.strip())
                prefix.clear()
        elif tok.type in ("fence", "code_block"):
            out.append("".join(prefix) + tok.content.rstrip("\n"))
            prefix.clear()
        elif tok.type == "html_block":
            from bs4 import BeautifulSoup

            text = BeautifulSoup(tok.content, "html.parser").get_text("\n")
            text = "\n".join(ln.strip() for ln in text.split("\n") if ln.strip())
            if text:
                out.append(text)
        elif tok.type in ("paragraph_close", "heading_close", "blockquote_close", "hr", "table_close"):
            if not stack or tok.type != "paragraph_close":
                out.append("")
    return _tidy("\n".join(out))


def read_markdown(path: Path) -> Extracted:
    """Markdown, MDX, reStructuredText and plain text (a `.txt` written in RST is read as RST), after front matter."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ExtractError(f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); save it as UTF-8") from None
    meta, body = split_front_matter(raw)
    suffix = path.suffix.lower()
    if suffix == ".mdx":
        text = render_markdown(strip_mdx(body))
    elif suffix in (".md", ".markdown"):
        text = render_markdown(body)
    elif suffix == ".rst" or looks_like_rst(body):  # and a .txt written in it (Python projects' README.txt, docs)
        return _rst(body, meta)
    else:  # plain text stays as it was written
        text = body.replace("\r\n", "\n").strip("\n")
    return Extracted(text, _first_heading(text), meta)


# ----------------------------------------------------------------------------------------- MDX
_MDX_ESM = re.compile(r"^(?:import|export)\s.*?(?:;|$)(?:\n(?!\s*$)(?![ \t]*(?:import|export)\s).*?)*$", re.M)
_JSX_TAG_LINE = re.compile(r"^[ \t]*(?:<\/?[A-Z][\w.]*(?:\s[^<>]*?)?\/?>[ \t]*)+$", re.M)
_JSX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)


def strip_mdx(body: str) -> str:
    """MDX as the markdown it holds: ``import``/``export`` statements (outside code fences), JSX comments
    ``{/* ... */}`` and lines that are only JSX component tags (``<Tabs>``, ``<TabItem value="x">``,
    ``</Tabs>``, ``<Admonition type="note" />``) removed; the markdown between the tags is kept."""
    out, fenced = [], False
    for block in re.split(r"(^```.*$|^~~~.*$)", body, flags=re.M):
        if re.match(r"^(```|~~~)", block):
            fenced = not fenced
            out.append(block)
        elif fenced:
            out.append(block)
        else:
            block = _JSX_COMMENT.sub("", block)
            block = _MDX_ESM.sub("", block)
            out.append(_JSX_TAG_LINE.sub("", block))
    return "".join(out)


# ----------------------------------------------------------------------------------------- reStructuredText
_RST_UNDERLINE = re.compile(r"^(\S.*)\n([=\-~^\"'`#*+:.]{3,})[ \t]*$", re.M)


def looks_like_rst(text: str) -> bool:
    """Whether plain text is reStructuredText: a title underlined (or over- and underlined) with a punctuation
    line as long as it, or an explicit markup block (``.. directive::``, ``.. _target:``)."""
    for m in _RST_UNDERLINE.finditer(text):
        if len(m.group(2)) >= len(m.group(1).rstrip()) and len(set(m.group(2).strip())) == 1:
            return True
    return bool(re.search(r"^\.\. (?:[\w-]+::|_[^:]+:)", text, re.M))


#: Sphinx roles (``:ref:`text <target>```, ``:doc:`x```) as their text: docutils alone does not know them
ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)?:`([^`]*?)(?:\s*<[^`>]*>)?`")


def _rst(body: str, meta: dict[str, Any]) -> Extracted:
    """reStructuredText through docutils (file inclusion and raw passthrough off; its messages silenced), as
    text: sections as ``#`` headings, list items as ``- `` / ``N. `` lines, table rows as ``a | b``; the
    document's title (docutils' ``doctitle``) unless front matter gives one."""
    from docutils import nodes
    from docutils.core import publish_doctree

    source = ROLE.sub(lambda m: m.group(1) or "", body)
    settings = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False, "raw_enabled": False,
                "_disable_config": True, "warning_stream": False, "input_encoding": "unicode"}
    try:
        tree = publish_doctree(source, settings_overrides=settings)
    except Exception as err:  # noqa: BLE001 - docutils raises its own kinds for markup it cannot build
        raise ExtractError(f"not readable reStructuredText ({type(err).__name__}: {str(err)[:120]})") from None
    out: list[str] = []

    def text_of(node: Any) -> str:
        return " ".join(node.astext().split())

    def walk(node: Any, depth: int, bullet: str = "") -> None:
        for child in node.children:
            if isinstance(child, (nodes.system_message, nodes.comment, nodes.substitution_definition, nodes.target)):
                continue
            if isinstance(child, nodes.section):
                title = child.next_node(nodes.title)
                if title is not None:
                    out.append(f"{'#' * min(6, depth + 1)} {text_of(title)}")
                walk(child, depth + 1)
            elif isinstance(child, nodes.title):
                continue
            elif isinstance(child, (nodes.bullet_list, nodes.enumerated_list)):
                for n, item in enumerate(child.children, int(child.get("start", 1) or 1)):
                    mark = f"{n}. " if isinstance(child, nodes.enumerated_list) else "- "
                    out.append(mark + text_of(item))
                out.append("")
            elif isinstance(child, nodes.table):
                for row in (child.findall(nodes.row) if hasattr(child, "findall") else child.traverse(nodes.row)):
                    out.append(" | ".join(text_of(entry) for entry in row.children))
                out.append("")
            elif isinstance(child, nodes.literal_block):
                out.append(child.astext())
                out.append("")
            elif isinstance(child, (nodes.paragraph, nodes.line_block, nodes.rubric)):
                out.append(text_of(child))
                out.append("")
            elif isinstance(child, nodes.Element) and child.children:
                walk(child, depth)
            elif isinstance(child, nodes.Text) and str(child).strip():
                out.append(" ".join(str(child).split()))

    doctitle = tree.get("title") or (text_of(tree.children[0]) if tree.children and isinstance(tree.children[0], nodes.title)
                                     else None)
    if doctitle:
        out.append(f"# {doctitle}")
        out.append("")
    walk(tree, 1 if doctitle else 0)
    text = _tidy("\n".join(out))
    if doctitle and placeholder(meta.get("title")):
        meta = {**meta, "title": doctitle}
    return Extracted(text, _first_heading(text), meta)


# ----------------------------------------------------------------------------------------- HTML
_BLOCKS = ("p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "pre", "table",
           "tr", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "caption", "form", "fieldset", "address", "hr")


def read_html(path: Path) -> Extracted:
    from bs4 import BeautifulSoup, NavigableString

    raw = path.read_bytes()
    soup = BeautifulSoup(raw, "html.parser")  # the standard library's parser: no native dependency
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    title_tag = soup.find("title")
    meta: dict[str, Any] = {}
    for m in soup.find_all("meta"):
        name, content = (m.get("name") or "").strip().lower(), m.get("content")
        if name in ("effective_date", "version", "supersedes", "superseded_by", "deprecated") and content is not None:
            meta[name] = content
    if title_tag is not None and title_tag.get_text(strip=True):
        meta.setdefault("title", title_tag.get_text(" ", strip=True))  # the page's own title, like front matter
    head = soup.find("head")
    if head is not None:
        head.decompose()
    body = soup.body or soup
    for level in range(1, 7):
        for h in body.find_all(f"h{level}"):
            words = " ".join(h.get_text(" ", strip=True).split())
            h.replace_with(NavigableString(f"\n\n{'#' * level} {words}\n\n" if words else "\n"))
    for li in body.find_all("li"):
        parent = li.find_parent(["ol", "ul"])
        marker = "- "
        if parent is not None and parent.name == "ol":
            try:
                first = int(parent.get("start", 1))
            except (TypeError, ValueError):
                first = 1
            marker = f"{first + parent.find_all('li', recursive=False).index(li)}. " if li.parent is parent else "- "
        li.insert_before(NavigableString(f"\n{marker}"))
        li.insert_after(NavigableString("\n"))
    for br in body.find_all("br"):
        br.replace_with(NavigableString("\n"))
    for cell in body.find_all(["td", "th"]):
        cell.insert_after(NavigableString(" | "))
    for tag in body.find_all(_BLOCKS):
        tag.insert_before(NavigableString("\n\n"))
        tag.insert_after(NavigableString("\n\n"))
    text = _tidy(body.get_text())
    text = re.sub(r"(?m)^(- |\d+\. )\n+", r"\1", text)  # an item whose text was in a nested block
    return Extracted(text, _first_heading(text), meta)


# ----------------------------------------------------------------------------------------- PDF
def _outline(reader: Any) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []

    def walk(items: Any, level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
            else:
                title = " ".join(str(getattr(item, "title", "") or "").split())
                if title:
                    out.append((min(level, 6), title))

    try:
        walk(reader.outline, 1)
    except Exception:  # noqa: BLE001 - a damaged outline is not worth losing the text for
        return []
    return out


class _Collect(logging.Handler):
    """Keeps a library's log records (pypdf's repair notes) for the log, off the terminal."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _dehyphenate(text: str) -> str:
    """Words a PDF broke at a line's end (``adip-\niscing``) joined, where the line after goes on in lower case."""
    return re.sub(r"(?<=[^\W\d_])[-\u00ad\u2010][ \t]*\n[ \t]*(?=[a-z\u00df-\u00ff])", "", text)


def _not_table_rows(ordered: list[str], candidates: dict[str, int]) -> set[str]:
    """Lines set larger than the body that are still no headings: three or more in a row (a table's rows, a
    list set in a larger font), or more than six at one size on a page."""
    out: set[str] = set()
    run: list[str] = []
    for ln in ordered + [""]:
        if ln in candidates:
            run.append(ln)
            continue
        if len(run) >= 3:
            out.update(run)
        run = []
    per_size = Counter(candidates[ln] for ln in ordered if ln in candidates)
    out.update(ln for ln in ordered if ln in candidates and per_size[candidates[ln]] > 6)
    return out


def read_pdf(path: Path) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    notes = _Collect()
    pdf_log = logging.getLogger("pypdf")
    pdf_log.addHandler(notes)
    propagate, pdf_log.propagate = pdf_log.propagate, False
    try:
        return _read_pdf(path, PdfReader, PdfReadError)
    finally:
        pdf_log.removeHandler(notes)
        pdf_log.propagate = propagate
        for record in notes.records:  # into the project's log, not onto the terminal
            log.debug("%s: pypdf: %s", path, record.getMessage())


def _read_pdf(path: Path, PdfReader: Any, PdfReadError: Any) -> Extracted:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pypdf's deprecation and repair warnings
            reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:  # noqa: BLE001
                raise ExtractError("encrypted PDF (no empty user password); decrypt it first") from None
        pages: list[str] = []
        sized: list[list[tuple[str, float]]] = []  # per page: (line, its largest font size)
        for page in reader.pages:
            runs: list[tuple[str, float]] = []

            def visit(text: str, cm: Any, tm: Any, font: Any, size: Any, runs: list = runs) -> None:
                try:
                    scale = math.hypot(float(tm[2]), float(tm[3])) * math.hypot(float(cm[2]), float(cm[3]))
                except (TypeError, ValueError, IndexError):
                    scale = 1.0
                runs.append((text, float(size or 0) * (scale or 1.0)))

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                page_text = page.extract_text(visitor_text=visit) or ""
            pages.append(_dehyphenate(unicodedata.normalize("NFKC", page_text)))  # ligatures as their letters
            runs[:] = [(unicodedata.normalize("NFKC", t), sz) for t, sz in runs]
            lines: list[tuple[str, float]] = []
            line, biggest = "", 0.0
            for text, size in runs + [("\n", 0.0)]:
                for piece in re.split(r"(\n)", text):
                    if piece == "\n":
                        if line.strip():
                            lines.append((" ".join(line.split()), biggest))
                        line, biggest = "", 0.0
                    elif piece:
                        line += piece
                        if piece.strip():
                            biggest = max(biggest, size)
            sized.append(lines)
    except ExtractError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as err:
        raise ExtractError(f"not a readable PDF ({type(err).__name__}: {err})") from None
    text = _tidy("\n\n".join(pages))
    if not text:
        raise ExtractError("no text in the PDF (a scanned image? run OCR first)")
    # the body's size: the size most characters are set in; headings are set larger (by 10% or more)
    weight: Counter = Counter()
    for lines in sized:
        for ln, size in lines:
            weight[round(size, 1)] += len(ln)
    body = weight.most_common(1)[0][0] if weight else 0.0
    larger = sorted({round(sz, 1) for lines in sized for _, sz in lines if body and sz >= body * 1.1}, reverse=True)
    size_level = {sz: min(i + 1, 6) for i, sz in enumerate(larger)}
    by_line = {ln: size_level.get(round(sz, 1)) for lines in sized for ln, sz in lines
               if round(sz, 1) in size_level and not _fragment(ln)}
    for lines in sized:  # a table's rows set larger than the body are no headings
        for ln in _not_table_rows([ln for ln, _ in lines], by_line):
            by_line.pop(ln, None)
    levels = {title: level for level, title in reversed(_outline(reader))}
    out = []
    for ln in text.split("\n"):
        key = " ".join(ln.split())
        level = levels.pop(key, None) or by_line.get(key)
        out.append(f"{'#' * level} {key}" if level and not key.startswith("#") else ln)
    text = "\n".join(out)
    info = reader.metadata or {}
    meta: dict[str, Any] = {}
    title = str(info.get("/Title") or "").strip() if hasattr(info, "get") else ""
    if title and not placeholder(title, path):
        meta["title"] = title
    elif sized and sized[0]:
        top = max(sz for _, sz in sized[0])
        first = [ln for ln, sz in sized[0] if sz == top and not _fragment(ln)]
        if first and (not body or top > body):
            meta["title"] = " ".join(first[:2])  # a title set over two lines
    return Extracted(text, _first_heading(text), meta)


# ----------------------------------------------------------------------------------------- DOCX
def read_docx(path: Path) -> Extracted:
    try:
        import docx
    except ImportError:
        raise ExtractError("reading .docx needs python-docx (pip install python-docx)") from None
    try:
        document = docx.Document(str(path))
    except Exception as err:  # noqa: BLE001 - python-docx raises many kinds for a damaged zip
        raise ExtractError(f"not a readable .docx ({type(err).__name__}: {err})") from None
    blocks = []
    body = document.iter_inner_content() if hasattr(document, "iter_inner_content") else document.paragraphs
    for para in body:
        if hasattr(para, "rows"):  # a table, where it stands: one row a line, its cells' text joined
            blocks += _docx_table(para)
            continue
        words = para.text.strip()
        if not words:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        m = re.match(r"Heading (\d)", style)
        if m:
            blocks.append(f"{'#' * min(6, int(m.group(1)))} {words}")
        elif style == "Title":
            blocks.append(f"# {words}")
        elif "List" in style:
            blocks.append(f"- {words}")
        else:
            blocks.append(words)
    text = "\n\n".join(blocks)
    props = document.core_properties
    meta: dict[str, Any] = {}
    if props.title and not placeholder(props.title, path):
        meta["title"] = props.title
    elif not _first_heading(text):
        first = next((b for b in blocks if b.strip() and not _fragment(b.lstrip("- "))), None)
        if first:
            meta["title"] = first.lstrip("- ")  # no title and no heading: the first paragraph names it
    return Extracted(text, _first_heading(text), meta)


# ----------------------------------------------------------------------------------------- PPTX / XLSX / EPUB
def read_pptx(path: Path) -> Extracted:
    """A presentation as text: each slide's title as a ``##`` heading, then its shapes' text (paragraphs in order,
    tables one row a line, groups opened), then its notes; the title is the file's own unless a placeholder, else
    the first slide's title."""
    try:
        from pptx import Presentation
        from pptx.enum.shapes import MSO_SHAPE_TYPE
    except ImportError:
        raise ExtractError("reading .pptx needs python-pptx (pip install python-pptx)") from None
    try:
        deck = Presentation(str(path))
    except Exception as err:  # noqa: BLE001 - a damaged zip or package
        raise ExtractError(f"not a readable .pptx ({type(err).__name__}: {err})") from None
    blocks: list[str] = []

    def shape_text(shape: Any, title: Any) -> None:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            for inner in shape.shapes:
                shape_text(inner, title)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [" | ".join(" ".join(c.text.split()) for c in row.cells) for row in shape.table.rows]
            blocks.append("\n".join(r for r in rows if r.strip(" |")))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame and shape.shape_id != title:
            paras = [" ".join(p.text.split()) for p in shape.text_frame.paragraphs]
            if any(paras):
                blocks.append("\n".join(p for p in paras if p))

    first_title = None
    for n, slide in enumerate(deck.slides, 1):
        title = slide.shapes.title
        heading = " ".join(title.text.split()) if title is not None and title.has_text_frame else ""
        first_title = first_title or heading or None
        blocks.append(f"## {heading or f'Slide {n}'}")
        for shape in slide.shapes:
            shape_text(shape, title.shape_id if title is not None else None)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = " ".join(slide.notes_slide.notes_text_frame.text.split())
            if notes:
                blocks.append(notes)
    meta: dict[str, Any] = {}
    own = deck.core_properties.title
    if own and not placeholder(own, path):
        meta["title"] = own
    elif first_title:
        meta["title"] = first_title
    text = "\n\n".join(blocks)
    return Extracted(text, _first_heading(text), meta)


def read_xlsx(path: Path) -> Extracted:
    """A workbook as text: each sheet a ``##`` section, each row a line of its non-empty cells (values, not
    formulas: the values Excel last saved)."""
    try:
        import openpyxl
    except ImportError:
        raise ExtractError("reading .xlsx needs openpyxl (pip install openpyxl)") from None
    try:
        book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged zip or workbook
        raise ExtractError(f"not a readable .xlsx ({type(err).__name__}: {err})") from None
    blocks: list[str] = []
    try:
        for sheet in book.worksheets:
            rows = []
            for row in sheet.iter_rows(values_only=True):
                cells = [" ".join(str(v).split()) for v in row if v is not None and str(v).strip()]
                if cells:
                    rows.append(" | ".join(cells))
            if rows:
                blocks.append(f"## {sheet.title}\n\n" + "\n".join(rows))
        own = book.properties.title
    finally:
        book.close()
    meta = {"title": own} if own and not placeholder(own, path) else {}
    text = "\n\n".join(blocks)
    return Extracted(text, _first_heading(text), meta)


def read_epub(path: Path) -> Extracted:
    """An e-book as text: its chapters in reading order (the spine), each read as HTML (headings kept); the title
    from its metadata."""
    try:
        from ebooklib import ITEM_DOCUMENT, epub
    except ImportError:
        raise ExtractError("reading .epub needs EbookLib (pip install ebooklib)") from None
    import tempfile
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EbookLib's future-behaviour warnings
            book = epub.read_epub(str(path), {"ignore_ncx": True})
    except Exception as err:  # noqa: BLE001 - a damaged zip or package document
        raise ExtractError(f"not a readable .epub ({type(err).__name__}: {err})") from None
    chapters = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (idref, _) in enumerate(book.spine):
            item = book.get_item_with_id(idref)
            if item is None or item.get_type() != ITEM_DOCUMENT or not item.is_chapter():
                continue  # the navigation document (a table of contents) is no chapter
            page = Path(tmp) / f"{i}.html"
            page.write_bytes(item.get_content())
            chapters.append(read_html(page).text)
    title = next((t for t, _ in book.get_metadata("DC", "title") if t and not placeholder(t, path)), None)
    text = "\n\n".join(c for c in chapters if c.strip())
    return Extracted(text, _first_heading(text), {"title": title} if title else {})


def _docx_table(table: Any) -> list[str]:
    """A DOCX table's rows as ``a | b | c`` lines (a merged cell once; a nested table's text inside its cell)."""
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell appears once per grid column it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return ["\n".join(rows)] if rows else []


READERS: dict[str, Callable[[Path], Extracted]] = {
    ".md": read_markdown, ".markdown": read_markdown, ".mdx": read_markdown, ".txt": read_markdown, ".rst": read_markdown,
    ".html": read_html, ".htm": read_html, ".pdf": read_pdf, ".docx": read_docx, ".pptx": read_pptx,
    ".xlsx": read_xlsx, ".epub": read_epub,
}


def extract(path: Path) -> Extracted:
    """Read one file with the reader for its extension; :class:`ExtractError` with the reason otherwise."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ExtractError(f"unsupported file type {path.suffix!r} (read: {', '.join(FORMATS)})")
    try:
        out = reader(path)
    except ExtractError:
        raise
    except OSError as err:
        raise ExtractError(f"cannot be read ({type(err).__name__}: {err.strerror or err})") from None
    if not out.text.strip():
        raise ExtractError("no text")
    return out
