"""Structure-aware chunkers: ``sections``, ``steps``, ``qa_pairs`` and ``auto``.

No library does this (generic splitters cut by size or sentence), so it is written here. Documents are
read as lines; each line is classified by what it starts with:

* headings — markdown ``#``, ``Section 7 ...``, ``Article 3: ...``, ``Chapter``/``Part``, ``3. TITLE IN CAPS``,
  or a short numbered line without closing punctuation (``2. Definitions``);
* clauses — ``4.2``, ``4.2.1``, ``4.2.``, ``(a)``, ``(iv)``, ``Clause 4.2:``, or a long numbered sentence (``3. If ...``);
* steps — ``Step 3:``, ``- Step 3 -``, ``3.``, ``3)``, ``(3)``;
* questions — ``Q:``, ``Question:``, ``**Q.**``, or a line ending in ``?``.

A unit (clause, step, Q&A pair) runs from its marker line to the next marker or blank line, so it is never
cut. Chunk spans are exact slices of the document and together cover all of its non-whitespace text.
"""

from __future__ import annotations

from typing import ClassVar

import re
from dataclasses import dataclass

from chunkers.base import BaseChunker
from chunkers.tokens import DEFAULT, TokenCounter
from chunkers.types import Chunk, Document
from chunkers.windows import contiguous, make_chunk, pack, sentence_spans, whole_document
from chunkers.options import Options, integer

HEADING = [
    re.compile(r"^(#{1,6})\s+\S"),
    re.compile(r"^(?:Section|Article|Chapter|Part)\s+\d+[A-Za-z]?(?:\s*[-–:.]\s*|\s+)\S.{0,100}$"),
    re.compile(r"^\d+\.\s+[A-Z][A-Z0-9 &,/'()-]{2,80}$"),
    re.compile(r"^\d+\.\s+[A-Z][^.!?:;]{0,60}$"),
]
CLAUSE = [
    re.compile(r"^\d+(?:\.\d+)+\.?\s+\S"),
    re.compile(r"^\((?:[a-z]|[ivx]{1,4})\)\s+\S"),
    re.compile(r"^Clause\s+\d+(?:\.\d+)*[:.]?\s+\S", re.I),
    re.compile(r"^\d+\.\s+\S.*[.!?]$"),
]
STEP = [
    re.compile(r"^Step\s+\d+\s*[:.)-]", re.I),
    re.compile(r"^-\s*Step\s+\d+\s*-", re.I),
    re.compile(r"^\d+[.)]\s+\S"),
    re.compile(r"^\(\d+\)\s+\S"),
]
QUESTION = [
    re.compile(r"^(?:\*\*)?(?:Q|Question)\s*[.:]\s*(?:\*\*)?\s*\S", re.I),
    re.compile(r"^(?!(?:\*\*)?(?:A|Answer)\s*[.:]).{3,200}\?\s*$"),
]


@dataclass
class Line:
    start: int
    end: int
    text: str  # stripped

    @property
    def blank(self) -> bool:
        return not self.text


def lines(text: str) -> list[Line]:
    out, pos = [], 0
    for raw in text.split("\n"):
        lead = len(raw) - len(raw.lstrip())
        out.append(Line(pos + lead, pos + len(raw.rstrip()), raw.strip()))
        pos += len(raw) + 1
    return out


def kinds(line: Line) -> set[str]:
    """Every kind of marker the line could start (``"1. Switch off ..."`` is a clause or a step; the
    chunker decides which it is looking for)."""
    t = line.text
    if not t:
        return {"blank"}
    if any(p.match(t) for p in HEADING) and not (t.endswith((".", "?", "!")) and len(t) > 60):
        return {"heading"}
    found = {name for name, patterns in (("clause", CLAUSE), ("step", STEP), ("question", QUESTION))
             if any(p.match(t) for p in patterns)}
    return found or {"text"}


def heading_level(t: str) -> int:
    m = re.match(r"^(#{1,6})\s", t)
    return len(m.group(1)) if m else 1


def units(text: str, starts: set[str]) -> list[tuple[str, int, int, str]]:
    """Group lines into units ``(kind, start, end, first_line_text)``: a unit begins at a line whose kind is
    in ``starts`` (or a heading, or the first line after a blank) and runs to the next such line."""
    out: list[list] = []
    prev_blank = True
    for ln in lines(text):
        ks = kinds(ln)
        if "blank" in ks:
            prev_blank = True
            continue
        k = "heading" if "heading" in ks else next(iter(sorted(ks & starts)), "text")
        begins = k != "text" or prev_blank or not out or out[-1][0] == "heading"
        if begins:
            out.append([k, ln.start, ln.end, ln.text])
        else:
            out[-1][2] = ln.end
        prev_blank = False
    return [tuple(u) for u in out]


class _Structured(BaseChunker):
    """Shared machinery: heading paths as context, over-long units split by sentences."""

    OPTIONS: ClassVar[Options] = {"size": integer(1)}

    starts: set[str] = set()

    def __init__(self, *, size: int = 256, tokenizer: str = DEFAULT, aggregate: str = "max") -> None:
        super().__init__(aggregate=aggregate)
        if int(size) < 1:
            raise ValueError(f"chunker.size must be >= 1, got {size}")
        self.size, self.counter = int(size), TokenCounter(tokenizer)

    def _emit(self, doc: Document, out: list[Chunk], start: int, end: int, context: str) -> None:
        """One chunk for the span, or sentence-packed pieces when it is longer than ``size`` tokens."""
        if self.counter.count(doc.text[start:end]) <= self.size:
            out.append(make_chunk(doc, len(out), start, end, context))
            return
        pieces = contiguous(pack(sentence_spans(doc.text, start, end), doc.text, self.size, self.counter), start, end)
        for s, e in pieces or [(start, end)]:
            out.append(make_chunk(doc, len(out), s, e, context))

    @staticmethod
    def _context(doc: Document, path: list[tuple[int, str]]) -> str:
        return " > ".join([doc.title] + [h for _, h in path]) if doc.title else " > ".join(h for _, h in path)


class SectionChunker(_Structured):
    """``chunker=sections``: one clause per chunk, its heading path in ``context``; text between a heading
    and its first clause is a chunk of its own."""

    starts = {"clause"}

    def chunk(self, doc: Document) -> list[Chunk]:
        out: list[Chunk] = []
        path: list[tuple[int, str]] = []
        for k, s, e, first in units(doc.text, self.starts):
            if k == "heading":
                level = heading_level(first)
                path = [h for h in path if h[0] < level] + [(level, first.lstrip("# ").strip())]
                if e > s + len(first):  # heading line followed by text in the same unit
                    self._emit(doc, out, s, e, self._context(doc, path[:-1]))
                else:
                    out.append(make_chunk(doc, len(out), s, e, self._context(doc, path[:-1])))
                continue
            self._emit(doc, out, s, e, self._context(doc, path))
        return out or whole_document(doc)


class StepChunker(_Structured):
    """``chunker=steps``: a procedure's steps packed up to ``size`` tokens, split only between steps, with
    the title and preconditions (everything before the first step) in ``context``."""

    starts = {"step"}

    def chunk(self, doc: Document) -> list[Chunk]:
        parts = units(doc.text, self.starts)
        first_step = next((i for i, u in enumerate(parts) if u[0] == "step"), None)
        if first_step is None:
            return SentenceLike(self).chunk(doc)
        out: list[Chunk] = []
        head_end = parts[first_step - 1][2] if first_step else 0
        preamble = doc.text[:head_end].strip()
        context = doc.title if not preamble else (preamble if preamble.startswith(doc.title) else f"{doc.title}\n{preamble}")
        if first_step:
            out.append(make_chunk(doc, 0, parts[0][1], head_end, doc.title))
        spans = [(u[1], u[2]) for u in parts[first_step:]]
        for s, e in pack(spans, doc.text, self.size, self.counter):
            out.append(make_chunk(doc, len(out), s, e, context))
        return out


class QAPairChunker(_Structured):
    """``chunker=qa_pairs``: one question with its answer per chunk; text before the first question is
    its own chunk."""

    starts = {"question"}

    def chunk(self, doc: Document) -> list[Chunk]:
        out: list[Chunk] = []
        parts = units(doc.text, self.starts)
        if not any(u[0] == "question" for u in parts):
            return SentenceLike(self).chunk(doc)
        pending: tuple[int, int] | None = None
        for k, s, e, _ in parts:
            if k == "question":
                if pending:
                    out.append(make_chunk(doc, len(out), *pending, doc.title))
                pending = (s, e)
            elif pending:
                # an answer separated by a blank line still belongs to its question
                pending = (pending[0], e)
            else:
                out.append(make_chunk(doc, len(out), s, e, doc.title))
        if pending:
            out.append(make_chunk(doc, len(out), *pending, doc.title))
        return out


class SentenceLike:
    """Fallback for structure chunkers given unstructured text: sentences packed to the same budget."""

    def __init__(self, parent: _Structured) -> None:
        self.parent = parent

    def chunk(self, doc: Document) -> list[Chunk]:
        groups = contiguous(pack(sentence_spans(doc.text), doc.text, self.parent.size, self.parent.counter),
                            0, len(doc.text))
        return [make_chunk(doc, n, s, e, doc.title) for n, (s, e) in enumerate(groups)] or whole_document(doc)


class AutoChunker(_Structured):
    """``chunker=auto``: per document, from ``doc_type`` metadata (policy -> sections, procedure -> steps,
    kb/faq -> qa_pairs) or, without it, from the structure found (questions, steps, clauses/headings),
    else sentences."""

    BY_TYPE = {"policy": "sections", "procedure": "steps", "kb": "qa_pairs", "faq": "qa_pairs"}

    def __init__(self, *, size: int = 256, tokenizer: str = DEFAULT, aggregate: str = "max") -> None:
        super().__init__(size=size, tokenizer=tokenizer, aggregate=aggregate)
        kw = dict(size=size, tokenizer=tokenizer, aggregate=aggregate)
        self.chunkers = {"sections": SectionChunker(**kw), "steps": StepChunker(**kw), "qa_pairs": QAPairChunker(**kw)}
        self.choices: dict[str, int] = {}

    def choose(self, doc: Document) -> str:
        by_type = self.BY_TYPE.get(str(doc.metadata.get("doc_type", "")).lower())
        if by_type:
            return by_type
        found = [kinds(ln) for ln in lines(doc.text)]
        counts = {k: sum(k in f for f in found) for k in ("question", "step", "clause", "heading")}
        if counts["question"] >= 2:
            return "qa_pairs"
        if counts["step"] >= 3 and counts["heading"] == 0 and any(re.match(r"^(?:-\s*)?Step\s+\d", ln.text, re.I)
                                                                 for ln in lines(doc.text)):
            return "steps"
        if counts["clause"] + counts["heading"] >= 2:
            return "sections"
        return "sentences"

    def chunk(self, doc: Document) -> list[Chunk]:
        name = self.choose(doc)
        self.choices[name] = self.choices.get(name, 0) + 1
        if name == "sentences":
            return SentenceLike(self).chunk(doc)
        return self.chunkers[name].chunk(doc)
