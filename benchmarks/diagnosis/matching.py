"""Matching reference text against retrieved passages: normalised containment, content-word recall with
every number kept, and where a chunk boundary cut a reference. Shared by the trace audit and the verdicts."""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

from retrievers.text import Tokenizer

RECALL_THRESHOLD = 0.8


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


class Matcher:
    """Containment and content-word recall of reference pieces in contexts. Words are analysed in the piece's
    language (the retrievers' analysis: :class:`retrievers.text.Tokenizer`), the contexts alike, so a German
    reference is stemmed as German and a Japanese one matched by character bigrams."""

    def __init__(self, threshold: float = RECALL_THRESHOLD) -> None:
        self.threshold = float(threshold)
        self.tok = Tokenizer(language="auto")

    def language(self, piece: str) -> str:
        return self.tok.language_of(piece)

    def words(self, text: str, language: str | None = None) -> set[str]:
        return set(self.tok(text, language or self.language(text)))

    def contained(self, piece: str, text: str) -> bool:
        p = normalise(piece)
        return bool(p) and f" {p} " in f" {normalise(text)} "

    def recall(self, piece: str, texts: Sequence[str]) -> float:
        language = self.language(piece)
        want = self.words(piece, language)
        if not want:
            return 0.0
        have: set[str] = set()
        for t in texts:
            have |= self.words(t, language)
        return len(want & have) / len(want)

    def reached(self, piece: str, texts: Sequence[str]) -> tuple[bool, str]:
        for i, t in enumerate(texts):
            if self.contained(piece, t):
                return True, f"contained in context #{i + 1}"
        r = self.recall(piece, texts)
        numbers = set(re.findall(r"\d+(?:[.,]\d+)*", piece))
        lost = sorted(n for n in numbers if not any(re.search(rf"(?<![\d.,]){re.escape(n)}(?![\d]|[.,]\d)", t) for t in texts))
        if r >= self.threshold and not lost:
            return True, f"token recall {r:.2f} >= {self.threshold:g}"
        why = f"token recall {r:.2f}" + (f" but {', '.join(lost)} is in no context" if lost and r >= self.threshold
                                           else f" < {self.threshold:g}")
        return False, f"not contained in any context; {why}"


def cut_at_edge(piece: str, texts: Sequence[str], min_words: int = 3) -> str | None:
    """A piece whose first words end a context, or whose last words begin one: the chunk boundary cut it."""
    words = normalise(piece).split()
    if len(words) < 2 * min_words:
        return None
    for i, t in enumerate(texts):
        ctx = normalise(t).split()
        for j in range(len(words) - 1, max(min_words, len(words) // 4) - 1, -1):
            if ctx[-j:] == words[:j]:
                return f"context #{i + 1} ends with the reference's first {j} of {len(words)} words: the rest was cut off"
            if ctx[:j] == words[-j:]:
                return f"context #{i + 1} begins with the reference's last {j} of {len(words)} words: its start was cut off"
    return None
