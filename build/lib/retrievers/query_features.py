"""Deterministic query features: the exact-term rule (and, later, routing signals).

A query is *exact-term* when it names something a lexical match must find: an identifier with digits
(``X-300``, ``E-4417``, ``IL-6``), a section or clause number (``4.2``, ``Section 7``), a quoted name, or a
term that is rare in the corpus (document frequency <= ``rare_fraction`` of the documents, i.e. a high
IDF; with the default 0.0005 a 5,000-document corpus counts terms in at most 2 documents, and a corpus
under 2,000 documents has no rare terms). Everything else is *other*.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Mapping

from retrievers.text import Tokenizer

IDENTIFIER = re.compile(r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+\b|\b[A-Z]{1,5}\d+[A-Z0-9]*\b")
SECTION = re.compile(r"\b(?:section|clause|article|step)\s+\d+(?:\.\d+)*\b|\b\d+\.\d+(?:\.\d+)*\b", re.I)
QUOTED = re.compile(r"\"[^\"]{2,}\"|“[^”]{2,}”|'[A-Z][^']{2,}'")


def document_frequencies(texts: Iterable[str], tokenizer: Tokenizer) -> Counter:
    df: Counter = Counter()
    for text in texts:
        df.update(set(tokenizer(text)))
    return df


class ExactTermRule:
    """Classifies queries as ``exact_term`` or ``other`` and says which signal fired."""

    def __init__(self, df: Mapping[str, int] | None = None, *, rare_df: int = 1, tokenizer: Tokenizer | None = None) -> None:
        self.df, self.rare_df = df or {}, rare_df
        self.tokenizer = tokenizer or Tokenizer()

    @classmethod
    def from_corpus(cls, texts: Iterable[str], *, rare_fraction: float = 0.0005) -> "ExactTermRule":
        tok = Tokenizer()
        texts = list(texts)
        return cls(document_frequencies(texts, tok), rare_df=int(len(texts) * rare_fraction), tokenizer=tok)

    def signals(self, query: str) -> list[str]:
        found = []
        if IDENTIFIER.search(query):
            found.append("identifier")
        if SECTION.search(query):
            found.append("section_number")
        if QUOTED.search(query):
            found.append("quoted_name")
        if self.df and any(0 < self.df.get(t, 0) <= self.rare_df for t in self.tokenizer(query)):
            found.append("rare_term")
        return found

    def __call__(self, query: str) -> str:
        return "exact_term" if self.signals(query) else "other"


NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")


def identifiers(query: str) -> list[str]:
    """The exact things a query names, in order and without repeats: identifiers with digits (``ERR-4012``),
    section or clause numbers, quoted names (quotes removed) and other numbers (``30``, ``4.5``)."""
    found: list[str] = []
    for pattern in (IDENTIFIER, SECTION, QUOTED, NUMBER):
        for m in pattern.finditer(query):
            term = m.group(0).strip("\"'“”").strip()
            if term and not any(term in f or f in term for f in found):
                found.append(term)
    return found
