"""Token counting for chunk budgets, offline: a Hugging Face ``tokenizers`` tokenizer or whitespace words.

The default is the default dense model's own tokenizer (all-MiniLM-L6-v2's WordPiece), so token budgets
mean what the encoder sees. Its ``tokenizer.json`` (Apache-2.0, from sentence-transformers/all-MiniLM-L6-v2)
ships gzipped in ``chunkers/data``, so a core install without torch or the model's weights counts the same
tokens. Any local folder or ``tokenizer.json`` path works; ``whitespace`` counts words.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

DEFAULT = "sentence-transformers/all-MiniLM-L6-v2"
_WORD = re.compile(r"\S+")


class TokenCounter:
    """``spans(text)`` gives each token's (start, end) character offsets; ``count(text)`` their number."""

    def __init__(self, name: str = DEFAULT) -> None:
        self.name = name
        self._tok = None if name == "whitespace" else _load(name)

    def spans(self, text: str) -> list[tuple[int, int]]:
        if self._tok is None:
            return [m.span() for m in _WORD.finditer(text)]
        enc = self._tok.encode(text, add_special_tokens=False)
        return [(s, e) for s, e in enc.offsets if e > s]

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._tok is None:
            return len(_WORD.findall(text))
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def counts(self, texts: Sequence[str]) -> list[int]:
        """``count`` of each text, the tokenizer's batch call (Rust, on every core) in blocks of 1,024."""
        if self._tok is None:
            return [self.count(t) for t in texts]
        batch = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)  # no offsets: tokenizers >= 0.21
        out: list[int] = []
        for i in range(0, len(texts), 1024):
            block = list(texts[i : i + 1024])
            out += [len(enc.ids) if text else 0
                    for text, enc in zip(block, batch(block, add_special_tokens=False))]
        return out


VENDORED = Path(__file__).resolve().parent / "data" / "all-MiniLM-L6-v2.tokenizer.json.gz"


@lru_cache(maxsize=8)
def _load(name: str):
    from tokenizers import Tokenizer

    if name in (DEFAULT, "all-MiniLM-L6-v2"):
        import gzip

        tok = Tokenizer.from_str(gzip.decompress(VENDORED.read_bytes()).decode("utf-8"))
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise ValueError(f"chunker.tokenizer={name!r}: no tokenizer.json found (offline); use a local folder with a "
                             "tokenizer.json, a path to one, or `whitespace`")
        tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok
