"""One tokenizer for every lexical backend: lowercase word tokens, stopwords, Snowball stemming."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Sequence

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=None)
def _stopword_set(name: str | None) -> frozenset[str]:
    if not name or name == "none":
        return frozenset()
    if name in ("en", "english"):
        from bm25s.stopwords import STOPWORDS_EN

        return frozenset(STOPWORDS_EN)
    raise ValueError(f"retriever.stopwords must be one of en|english|none, got {name!r}")


class Tokenizer:
    """Tokenizes the same way for indexing and querying, whatever the backend."""

    def __init__(self, *, stemmer: str | None = "english", stopwords: str | None = "en") -> None:
        self.stopwords = _stopword_set(stopwords)
        self.stemmer_name = stemmer if stemmer and stemmer != "none" else None
        self._stemmer = None
        if self.stemmer_name:
            import Stemmer

            try:
                self._stemmer = Stemmer.Stemmer(self.stemmer_name)
            except KeyError as err:
                raise ValueError(
                    f"retriever.stemmer {stemmer!r} is not a Snowball stemmer; one of "
                    f"{', '.join(Stemmer.algorithms())} or none"
                ) from err
        self._stem_cache: dict[str, str] = {}

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self.stopwords]
        if self._stemmer is None:
            return words
        cache = self._stem_cache
        missing = [w for w in set(words) if w not in cache]
        if missing:
            cache.update(zip(missing, self._stemmer.stemWords(missing)))
        return [cache[w] for w in words]

    def many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self(t) for t in texts]

    def settings(self) -> dict[str, object]:
        return {"stemmer": self.stemmer_name, "stopwords": sorted(self.stopwords), "pattern": _TOKEN.pattern}


def batched(seq: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]
