"""Text and structure out of a team's own files: markdown/text (with YAML front matter), HTML, PDF, DOCX.

Each reader returns an :class:`Extracted`: the document text with its headings written as markdown
``#`` lines (so ``chunker=sections|auto`` splits on them whatever the source format), the first heading,
and the metadata the file itself declares (front matter, PDF document info). Parsing uses well-kept
libraries — markdown-it-py for markdown (rendered to text: link text kept, URLs, inline HTML and template
tags — Liquid ``{% %}``/``{{ }}``, Hugo shortcodes — dropped), BeautifulSoup for HTML (a real parser, not
regexes), pypdf for PDF (outline entries, and lines set in a font larger than the body's, become headings;
a line that is a number or a fragment never does), python-docx for DOCX (``Title`` / ``Heading N`` styles) —
and PyYAML for front matter. A title the file declares is used unless it is a placeholder ("Untitled",
"Microsoft Word - x.doc", "Word Document", the file's own name); then the PDF's largest text on its first
page, the first heading, or (DOCX) the first paragraph.
A reader raises :class:`ExtractError` with a reason a user can act on; the loader lists, counts and skips
such files (or stops, with ``dataset.strict=true``).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from benchmarks.datasets.limits import yaml_load

FORMATS = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")


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
                          r"presentation\d*|slide \d+|title|no title|.*\.(docx?|pdf|rtf|odt|pptx?|txt|md|html?))$", re.I)


def placeholder(title: Any, path: Path | None = None) -> bool:
    """A title that says nothing about the document: empty, "Untitled", "Microsoft Word - x.doc", "Word Document",
    "Document1", or a file name with its extension (``scan_0001.pdf``, the file's own)."""
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
def split_front_matter(raw: str) -> tuple[dict[str, Any], str]:
    """YAML between ``---`` lines at the very top -> (metadata, body). No front matter: ({}, raw)."""
    import yaml

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
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                parts.append("\n")
            elif child.type == "image":
                parts.append(child.content)  # the alt text
            elif child.type == "html_inline":
                continue  # a tag; the text around it is kept
        text = "".join(parts)
        return _URL.sub("", text) if "http" in text else text

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
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ExtractError(f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); save it as UTF-8") from None
    meta, body = split_front_matter(raw)
    if path.suffix.lower() in (".md", ".markdown"):
        text = render_markdown(body)
    else:  # plain text stays as it was written
        text = body.replace("\r\n", "\n").strip("\n")
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


def read_pdf(path: Path) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
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

            pages.append(page.extract_text(visitor_text=visit) or "")
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
    for para in document.paragraphs:
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


READERS: dict[str, Callable[[Path], Extracted]] = {
    ".md": read_markdown, ".markdown": read_markdown, ".txt": read_markdown,
    ".html": read_html, ".htm": read_html, ".pdf": read_pdf, ".docx": read_docx,
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
