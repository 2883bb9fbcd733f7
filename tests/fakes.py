"""Test doubles: a deterministic, counting encoder (no model, no network)."""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np


class CountingEncoder:
    """Bag-of-hashed-words vectors, L2-normalised; counts every text it encodes."""

    def __init__(self, name: str = "fake-encoder", dim: int = 64, fail_after: int | None = None) -> None:
        self.name, self.dim, self.fail_after = name, dim, fail_after
        self.calls = 0
        self.texts = 0

    def identity(self) -> dict[str, Any]:
        return {"encoder": "counting-fake", "model": self.name, "dim": self.dim}

    def encode(self, texts: Sequence[str], *, kind: str) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        if self.fail_after is not None and self.texts > self.fail_after:
            raise RuntimeError("encoder crashed")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                h = int(hashlib.md5(word.strip(".,?!").encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class FixedRetriever:
    """Returns a fixed chunk-level run per query id (``scores[qid] = {doc_id: score}``); counts index calls."""

    def __init__(self, scores: dict[str, dict[str, float]]) -> None:
        self.scores = scores
        self.index_builds = 0

    def index(self, chunks) -> None:
        self.index_builds += 1

    def search(self, queries, *, top_k: int):
        return {q.id: {f"{d}#0": s for d, s in self.scores.get(q.id, {}).items()} for q in queries}

    def stats(self) -> dict[str, float]:
        return {"index_builds": float(self.index_builds)}
