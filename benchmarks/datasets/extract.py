"""Text and structure out of a team's own files: markdown/text (with YAML front matter), HTML, PDF, DOCX.

Each reader returns an :class:`Extracted`: the document text with its headings written as markdown
``#`` lines (so ``chunker=sections|auto`` splits on them whatever the source format), the first heading,
and the metadata the file itself declares (front matter, PDF document info). Parsing uses well-kept
libraries — BeautifulSoup for HTML (a real parser, not regexes), pypdf for PDF (outline entries and
bold-font lines become headings), python-docx for DOCX (``Heading N`` styles) — and PyYAML for front matter.
A reader raises :class:`ExtractError` with a reason a user can act on; the loader lists, counts and skips
such files (or stops, with ``dataset.strict=true``).
"""

from __future__ import annotations

import datetime as _dt
import re
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


def read_markdown(path: Path) -> Extracted:
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ExtractError(f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); save it as UTF-8") from None
    meta, body = split_front_matter(raw)
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
        bold: set[str] = set()
        for page in reader.pages:
            runs: list[tuple[str, bool]] = []

            def visit(text: str, cm: Any, tm: Any, font: Any, size: Any, runs: list = runs) -> None:
                name = str((font or {}).get("/BaseFont", "")) if hasattr(font, "get") else ""
                runs.append((text, "bold" in name.lower()))

            pages.append(page.extract_text(visitor_text=visit) or "")
            line, all_bold = "", True
            for text, is_bold in runs + [("\n", True)]:
                for piece in re.split(r"(\n)", text):
                    if piece == "\n":
                        if line.strip() and all_bold and len(line.strip()) <= 100:
                            bold.add(" ".join(line.split()))
                        line, all_bold = "", True
                    elif piece:
                        line += piece
                        all_bold = all_bold and (is_bold or not piece.strip())
    except ExtractError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as err:
        raise ExtractError(f"not a readable PDF ({type(err).__name__}: {err})") from None
    text = _tidy("\n\n".join(pages))
    if not text:
        raise ExtractError("no text in the PDF (a scanned image? run OCR first)")
    levels = {title: level for level, title in reversed(_outline(reader))}
    lines = []
    for ln in text.split("\n"):
        key = " ".join(ln.split())
        level = levels.pop(key, None) or (1 if key in bold and not key.startswith("#") and len(key.split()) <= 12 else None)
        lines.append(f"{'#' * level} {key}" if level else ln)
    text = "\n".join(lines)
    info = reader.metadata or {}
    meta: dict[str, Any] = {}
    title = str(info.get("/Title") or "").strip() if hasattr(info, "get") else ""
    if title:
        meta["title"] = title
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
    meta = {"title": props.title} if props.title else {}
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
