"""TREC run and qrels files that round-trip any id (whitespace and '%' are percent-escaped)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from retrievers.types import Qrels, Run
from retrievers.base import canonical_run

def _quote(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


_NEEDS_ESCAPE = re.compile(r"[%\s]")


def escape_id(value: str) -> str:
    """Make an id one whitespace-free TREC token: '%' and every whitespace character are percent-encoded
    (UTF-8), so ``unescape_id`` inverts it exactly. Ids without them are unchanged."""
    if not _NEEDS_ESCAPE.search(value):
        return value
    return "".join(_quote(ch) if ch == "%" or ch.isspace() else ch for ch in value)


def unescape_id(token: str) -> str:
    return unquote(token) if "%" in token else token


def write_run(run: Run, path: Path, tag: str = "rbench") -> None:
    """``qid Q0 docid rank score tag`` lines, each query in canonical order (trec_eval's own order)."""
    with open(path, "w", encoding="utf-8") as fh:
        for qid, hits in canonical_run(run).items():
            q = escape_id(qid)
            for rank, (did, score) in enumerate(hits.items(), 1):
                fh.write(f"{q} Q0 {escape_id(did)} {rank} {score!r} {tag}\n")


def read_run(path: Path) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{lineno}: expected 6 columns in a TREC run line, got {len(parts)}")
            qid, _, did, _, score, _ = parts
            run.setdefault(unescape_id(qid), {})[unescape_id(did)] = float(score)
    return run


def write_qrels(qrels: Qrels, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for qid, rels in qrels.items():
            for did, rel in rels.items():
                fh.write(f"{escape_id(qid)} 0 {escape_id(did)} {int(rel)}\n")
