"""Native multi-hop formats: HotpotQA (official JSON and the Hugging Face schema) and MuSiQue.

Documents are the context paragraphs pooled across questions, each with a deterministic,
whitespace-free id (title slug + content hash); qrels are the supporting paragraphs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

from chunkers.types import Document, Query
from retrievers.types import Qrels
from benchmarks.datasets.base import (Dataset, apply_limit, attach_decompositions, check_corpus, paragraph_id,
                                      read_json_records, require, require_id, require_text)
from benchmarks.errors import DataError
from retrievers.infrastructure.hub import go_offline_if_unreachable

log = logging.getLogger(__name__)


class _Pool:
    """Pools paragraphs across questions: one Document per distinct (title, text)."""

    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}

    def add(self, title: str, text: str, metadata: dict[str, Any] | None = None) -> str:
        did = paragraph_id(title, text)
        if did not in self.docs:
            self.docs[did] = Document(did, title, text, metadata or {})
        return did


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import datasets

        table = datasets.load_dataset("parquet", data_files=str(path), split="train")
        yield from ((f"record {i + 1}", rec) for i, rec in enumerate(table))
        return
    yield from read_json_records(path)


def _hotpot_fields(rec: dict[str, Any], path: Path, line: int | str) -> tuple[list[tuple[str, list[str]]], list[tuple[str, int]]]:
    """Normalise either schema to ``[(title, sentences)]`` and ``[(title, sent_id)]``."""
    ctx = require(rec, "context", path=path, line=line)
    sfs = require(rec, "supporting_facts", path=path, line=line)
    try:
        if isinstance(ctx, dict):  # Hugging Face: dicts of lists
            paragraphs = list(zip(ctx["title"], ctx["sentences"]))
        else:
            paragraphs = [(p[0], p[1]) for p in ctx]
        if isinstance(sfs, dict):
            facts = list(zip(sfs["title"], sfs["sent_id"]))
        else:
            facts = [(f[0], int(f[1])) for f in sfs]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise DataError(f"context/supporting_facts not in HotpotQA format ({type(err).__name__}: {err})",
                        path=path, line=line) from None
    return [(str(t), [str(s) for s in sents]) for t, sents in paragraphs], [(str(t), int(i)) for t, i in facts]


def build_hotpotqa(records: Iterable[tuple[int, dict[str, Any]]], path: Path, *, name: str = "hotpotqa") -> Dataset:
    pool = _Pool()
    queries: list[Query] = []
    qrels: Qrels = {}
    notes = {"supporting_facts_unmatched": 0, "questions_without_gold_in_context": 0}
    seen: dict[str, int | str] = {}
    for line, rec in tqdm(records, desc="read hotpotqa", unit=" q", leave=False, disable=None):
        qid = require_id(rec, "_id" if "_id" in rec or "id" not in rec else "id", path=path, line=line)
        _once(qid, line, seen, path)
        question = require_text(rec, "question", path=path, line=line)
        paragraphs, facts = _hotpot_fields(rec, path, line)
        by_title: dict[str, tuple[str, list[int]]] = {}
        for title, sents in paragraphs:
            text = "".join(sents)
            offsets, pos = [], 0
            for s in sents:
                offsets.append(pos)
                pos += len(s)
            offsets.append(pos)
            by_title[title] = (pool.add(title, text), offsets)
        evidence, rel = [], {}
        for title, sid in facts:
            if title not in by_title:
                notes["supporting_facts_unmatched"] += 1
                continue
            did, offsets = by_title[title]
            rel[did] = 1
            if 0 <= sid < len(offsets) - 1:
                evidence.append({"doc_id": did, "start": offsets[sid], "end": offsets[sid + 1]})
            else:
                notes["supporting_facts_unmatched"] += 1
        if rel:
            qrels[qid] = rel
        else:  # kept: retrieved and counted as skipped (no judgments), never dropped from the counts
            notes["questions_without_gold_in_context"] += 1
        meta = {k: rec[k] for k in ("type", "level", "answer") if k in rec}
        meta["supporting_facts"] = [[t, i] for t, i in facts]
        meta["evidence"] = evidence
        queries.append(Query(qid, str(question), meta))
    corpus = list(pool.docs.values())
    check_corpus(corpus, path)
    return Dataset(name=name, corpus=corpus, queries=queries, qrels=qrels, source=str(path), notes=notes)


class HotpotQALoader:
    """``dataset=hotpotqa``: a local ``.json``/``.jsonl``/``.parquet`` file (``path``) or the hub."""

    def __init__(
        self, *, path: str | None = None, hub_id: str = "hotpotqa/hotpot_qa", config: str = "distractor",
        split: str = "test", limit: int | None = None, strict: bool = True, name: str = "hotpotqa",
        data_dir: str = ".", tune_split: str | None = None, decompositions: str | None = None,
    ) -> None:
        self.decompositions = decompositions
        if config not in ("distractor", "fullwiki"):
            raise DataError(f"dataset.config must be distractor|fullwiki, got {config!r}")
        self.path, self.hub_id, self.config, self.split, self.limit = path, hub_id, config, split, limit
        self.name, self.data_dir, self.strict = name, data_dir, strict

    def dataset_name(self) -> str:
        """The name runs are labelled with (``dataset.name``)."""
        return self.name

    def load(self) -> Dataset:
        if self.path:
            path = Path(self.path)
            if not path.exists():
                raise DataError("dataset.path: file not found", path=path)
            ds = build_hotpotqa(_records(path), path, name=self.name)
            ds.split = self.split
        else:
            ds = self._from_hub()
        ds.queries, ds.qrels = apply_limit(ds.queries, ds.qrels, self.limit)
        if self.decompositions:
            ds.queries, ds.notes["queries_with_decomposition"] = attach_decompositions(ds.queries, self.decompositions)
        return ds

    def _from_hub(self) -> Dataset:
        # HotpotQA's test split has no answers or supporting facts: "test" means the labelled dev set.
        hf_split = "validation" if self.split == "test" else self.split
        if not go_offline_if_unreachable():
            raise DataError(
                f"cannot reach the Hugging Face hub to load {self.hub_id} ({self.config}, {hf_split}); this machine "
                "looks offline. Pass dataset.path=<a local HotpotQA .json/.jsonl/.parquet file>."
            )
        import datasets

        try:
            table = datasets.load_dataset(self.hub_id, self.config, split=hf_split, cache_dir=f"{self.data_dir}/hf")
        except Exception as err:
            raise DataError(f"loading {self.hub_id} ({self.config}, {hf_split}) from the hub failed: {err}") from None
        ds = build_hotpotqa(((f"record {i + 1}", r) for i, r in enumerate(table)), Path(f"hf://{self.hub_id}/{self.config}/{hf_split}"), name=self.name)
        ds.split = self.split
        return ds


def build_musique(records: Iterable[tuple[int, dict[str, Any]]], path: Path, *, name: str = "musique") -> Dataset:
    pool = _Pool()
    queries: list[Query] = []
    qrels: Qrels = {}
    notes = {"questions_without_supporting_paragraph": 0}
    seen: dict[str, int | str] = {}
    for line, rec in tqdm(records, desc="read musique", unit=" q", leave=False, disable=None):
        qid = require_id(rec, "id", path=path, line=line)
        _once(qid, line, seen, path)
        question = require_text(rec, "question", path=path, line=line)
        paragraphs = require(rec, "paragraphs", path=path, line=line)
        idx_to_doc: dict[int, str] = {}
        rel: dict[str, int] = {}
        evidence = []
        for i, p in enumerate(paragraphs):
            try:
                title, text = str(p["title"]), str(p["paragraph_text"])
            except (KeyError, TypeError):
                raise DataError(f"paragraph {i} lacks title/paragraph_text", path=path, line=line) from None
            did = pool.add(title, text)
            idx_to_doc[int(p.get("idx", i))] = did
            if p.get("is_supporting"):
                rel[did] = 1
                evidence.append({"doc_id": did, "start": 0, "end": len(text)})
        if not rel:  # kept: retrieved and counted as skipped (no judgments)
            notes["questions_without_supporting_paragraph"] += 1
        steps = []
        for step in rec.get("question_decomposition") or []:
            step = dict(step)
            support = step.get("paragraph_support_idx")
            step["doc_id"] = idx_to_doc.get(support) if support is not None else None
            steps.append(step)
        hops = qid.split("hop", 1)[0] if "hop" in qid else ""
        meta = {
            "answer": rec.get("answer"), "answer_aliases": rec.get("answer_aliases", []),
            "answerable": rec.get("answerable", True), "question_decomposition": steps,
            "hops": int(hops) if hops.isdigit() else len(steps), "evidence": evidence,
        }
        if rel:
            qrels[qid] = rel
        queries.append(Query(qid, str(question), meta))
    corpus = list(pool.docs.values())
    check_corpus(corpus, path)
    return Dataset(name=name, corpus=corpus, queries=queries, qrels=qrels, source=str(path), notes=notes)


def _once(qid: str, line: int | str, seen: dict[str, int | str], path: Path) -> None:
    if qid in seen:
        raise DataError(f"duplicate question id {qid!r} (first at {seen[qid]})", path=path, line=line)
    seen[qid] = line


class MuSiQueLoader:
    """``dataset=musique``: MuSiQue's native ``.jsonl`` release (or a ``.json`` list) at ``path``."""

    def __init__(self, *, path: str | None = None, split: str = "test", limit: int | None = None,
                 strict: bool = True, name: str = "musique", data_dir: str = ".", tune_split: str | None = None) -> None:
        self.path, self.split, self.limit, self.name = path, split, limit, name

    def dataset_name(self) -> str:
        """The name runs are labelled with (``dataset.name``)."""
        return self.name

    def load(self) -> Dataset:
        if not self.path:
            raise DataError(
                "dataset=musique needs dataset.path=<musique_ans_v1.0_dev.jsonl or a .json list>; MuSiQue is "
                "distributed as a download from its authors' repository, not from the hub"
            )
        path = Path(self.path)
        if not path.exists():
            raise DataError("dataset.path: file not found", path=path)
        ds = build_musique(_records(path), path, name=self.name)
        ds.split = self.split
        ds.queries, ds.qrels = apply_limit(ds.queries, ds.qrels, self.limit)
        return ds
