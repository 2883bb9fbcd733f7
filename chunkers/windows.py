"""Generic chunkers: fixed token windows and sentence packing (``chunker=fixed_tokens|sentences``)."""

from __future__ import annotations

from typing import ClassVar


from chunkers.base import BaseChunker
from chunkers.tokens import DEFAULT, TokenCounter
from chunkers.types import Chunk, Document, chunk_id
from chunkers.options import Options, integer


def make_chunk(doc: Document, n: int, start: int, end: int, context: str) -> Chunk:
    """A chunk over ``doc.text[start:end]`` with surrounding whitespace trimmed off the span."""
    text = doc.text
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Chunk(chunk_id(doc.id, n), doc.id, doc.title, text[start:end], start, end, context, doc.metadata)


def contiguous(spans: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Stretch ordered spans so together they cover ``[start, end)``: the first starts at ``start``, each
    ends no earlier than the next begins, the last ends at ``end``. Characters a tokenizer or sentence
    splitter skips (control characters, stray symbols) thus stay in some chunk."""
    if not spans:
        return []
    out = [list(s) for s in spans]
    out[0][0] = min(out[0][0], start)
    for a, b in zip(out, out[1:]):
        a[1] = max(a[1], b[0])
    out[-1][1] = max(out[-1][1], end)
    return [(s, e) for s, e in out]


def whole_document(doc: Document) -> list[Chunk]:
    """What every chunker returns for a document without content: one (possibly empty) chunk, so the
    document stays retrievable by its title."""
    return [make_chunk(doc, 0, 0, len(doc.text), doc.title)]


class FixedTokenChunker(BaseChunker):
    """``chunker=fixed_tokens``: windows of ``size`` tokens overlapping by ``overlap``, cut at token
    boundaries of ``tokenizer`` (the default dense model's WordPiece, offline, or ``whitespace``)."""

    OPTIONS: ClassVar[Options] = {"size": integer(1), "overlap": integer(0)}

    def __init__(self, *, size: int = 128, overlap: int = 0, tokenizer: str = DEFAULT, aggregate: str = "max") -> None:
        super().__init__(aggregate=aggregate)
        if int(size) < 1 or not 0 <= int(overlap) < int(size):
            raise ValueError(f"chunker.size must be >= 1 and 0 <= chunker.overlap < size; got size={size}, overlap={overlap}")
        self.size, self.overlap, self.counter = int(size), int(overlap), TokenCounter(tokenizer)

    def chunk(self, doc: Document) -> list[Chunk]:
        spans = self.counter.spans(doc.text)
        if not spans:
            return whole_document(doc)
        windows, step = [], self.size - self.overlap
        for i in range(0, len(spans), step):
            j = min(i + self.size, len(spans))
            windows.append((spans[i][0], spans[j - 1][1]))
            if j == len(spans):
                break
        return [make_chunk(doc, n, s, e, doc.title) for n, (s, e) in enumerate(contiguous(windows, 0, len(doc.text)))]


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence offsets in ``text[start:end]``, from sentencex (Wikimedia's rule-based segmenter: abbreviations,
    numbers, ~300 languages, offline; English rules), trailing whitespace left out."""
    from sentencex import get_sentence_boundaries

    end = len(text) if end is None else end
    piece = text[start:end]
    if not piece.strip():
        return []
    spans = []
    for b in get_sentence_boundaries("en", piece):
        s, e = int(b["start_index"]), int(b["end_index"])
        while s < e and piece[s].isspace():
            s += 1
        while e > s and piece[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((start + s, start + e))
    return spans


def pack(spans: list[tuple[int, int]], text: str, budget: int, counter: TokenCounter) -> list[tuple[int, int]]:
    """Greedily pack consecutive spans into groups of at most ``budget`` tokens (a longer span stands alone)."""
    groups: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    cur_tokens = 0
    for s, e in spans:
        n = counter.count(text[s:e])
        if cur is not None and cur_tokens + n <= budget:
            cur, cur_tokens = (cur[0], e), cur_tokens + n
        else:
            if cur is not None:
                groups.append(cur)
            cur, cur_tokens = (s, e), n
    if cur is not None:
        groups.append(cur)
    return groups


class SentenceChunker(BaseChunker):
    """``chunker=sentences``: whole sentences (sentencex) packed up to ``size`` tokens."""

    OPTIONS: ClassVar[Options] = {"size": integer(1)}

    def __init__(self, *, size: int = 128, tokenizer: str = DEFAULT, aggregate: str = "max") -> None:
        super().__init__(aggregate=aggregate)
        if int(size) < 1:
            raise ValueError(f"chunker.size must be >= 1, got {size}")
        self.size, self.counter = int(size), TokenCounter(tokenizer)

    def chunk(self, doc: Document) -> list[Chunk]:
        groups = contiguous(pack(sentence_spans(doc.text), doc.text, self.size, self.counter), 0, len(doc.text))
        if not groups:
            return whole_document(doc)
        return [make_chunk(doc, n, s, e, doc.title) for n, (s, e) in enumerate(groups)]
