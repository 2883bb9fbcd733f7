"""``dataset=irds dataset.id=<ir_datasets id>``: any collection the ``ir_datasets`` package knows (PyTerrier
users' 200+ ids: ``beir/scifact/test``, ``msmarco-passage/dev/small``, ``vaswani``, ...) that has docs,
queries and qrels.

ir_datasets downloads and caches on first use (``IR_DATASETS_HOME``, default ``~/.ir_datasets``); offline,
a collection that is not in that cache fails with an error naming the id and the cache. Documents keep
their ``title`` where the collection has one; the text is the ``text`` (or ``body``) field, else ir_datasets'
``default_text()``. As for BEIR folders, queries without relevant judgments are not run, and judgments naming
unknown ids are an error (``dataset.strict=false``: counted and dropped).
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

from chunkers.types import Document, Query
from retrievers.types import Qrels
from benchmarks.datasets.base import Dataset, apply_limit, check_corpus
from benchmarks.errors import ConfigError, DataError
from retrievers.infrastructure.extras import need

log = logging.getLogger(__name__)


def _text(record: Any, *fields: str) -> str:
    for name in fields:
        value = getattr(record, name, None)
        if isinstance(value, str):
            return value
    if hasattr(record, "default_text"):
        return str(record.default_text())
    raise DataError(f"ir_datasets record {type(record).__name__} has none of the fields {fields} and no default_text()")


def _home() -> str:
    import os

    return os.environ.get("IR_DATASETS_HOME", "~/.ir_datasets")


class IrdsLoader:
    def __init__(self, *, id: str | None = None, name: str | None = None, split: str = "test", strict: bool = True,
                 limit: int | None = None, data_dir: str = ".", path: str | None = None) -> None:
        if not id:
            raise ConfigError("dataset.id: give an ir_datasets id, e.g. dataset=irds dataset.id=beir/scifact/test")
        if path:
            raise ConfigError("dataset.path is not used by dataset=irds (ir_datasets keeps its own cache, IR_DATASETS_HOME)")
        self.id, self.name, self.split, self.strict, self.limit = str(id), name, split, bool(strict), limit

    def _open(self) -> Any:
        need("dataset=irds", "ir_datasets")
        import ir_datasets

        try:
            ds = ir_datasets.load(self.id)
        except KeyError:
            known = list(ir_datasets.registry)
            close = difflib.get_close_matches(self.id, known, n=3)
            raise ConfigError(f"dataset.id={self.id!r} is not an ir_datasets id"
                              + (f"; did you mean {', '.join(close)}?" if close else " (see https://ir-datasets.com)")) from None
        lacking = [part for part in ("docs", "queries", "qrels") if not getattr(ds, f"has_{part}")()]
        if lacking:
            raise ConfigError(f"dataset.id={self.id!r} has no {' or '.join(lacking)}; choose an id with docs, queries and "
                              "qrels (for BEIR and many others that is a split id such as beir/scifact/test)")
        return ds

    def dataset_name(self) -> str:
        """The name runs are labelled with: ``dataset.name``, else the ir_datasets id with ``-`` for ``/``."""
        return self.name or self.id.replace("/", "-")

    def load(self) -> Dataset:
        from tqdm.auto import tqdm

        ds = self._open()
        try:
            total = ds.docs_count() if hasattr(ds, "docs_count") else None
            corpus: list[Document] = []
            seen: set[str] = set()
            for d in tqdm(ds.docs_iter(), total=total, desc=f"read {self.id}", unit=" docs", leave=False, disable=None):
                did = str(d.doc_id)
                if did in seen:
                    raise DataError(f"ir_datasets {self.id}: duplicate doc id {did!r}")
                seen.add(did)
                title = getattr(d, "title", "") or ""
                corpus.append(Document(did, str(title), _text(d, "text", "body")))
            queries = {str(q.query_id): Query(str(q.query_id), _text(q, "text", "title")) for q in ds.queries_iter()}
            qrels: Qrels = {}
            for r in ds.qrels_iter():
                qrels.setdefault(str(r.query_id), {})[str(r.doc_id)] = int(r.relevance)
        except (DataError, ConfigError):
            raise
        except Exception as err:  # noqa: BLE001 - network and format errors from ir_datasets' downloaders
            raise DataError(f"ir_datasets could not provide {self.id!r} ({type(err).__name__}: {str(err)[:200]}); when "
                            f"this machine is offline the collection must already be in the ir_datasets cache "
                            f"({_home()})") from None
        check_corpus(corpus, f"ir_datasets:{self.id}")
        notes: dict[str, int] = {}
        doc_ids = set(seen)
        unknown = [(q, d) for q, rels in qrels.items() for d in rels if d not in doc_ids] + \
                  [(q, None) for q in qrels if q not in queries]
        if unknown:
            q, d = unknown[0]
            what = f"doc id {d!r}" if d is not None else f"query id {q!r}"
            if self.strict:
                raise DataError(f"ir_datasets {self.id}: qrels name {len(unknown)} unknown id(s), e.g. {what} "
                                "(set dataset.strict=false to drop such judgments)")
            qrels = {qid: {did: s for did, s in rels.items() if did in doc_ids} for qid, rels in qrels.items() if qid in queries}
            notes["qrels_dropped"] = len(unknown)
        judged = [queries[q] for q in queries if any(s > 0 for s in qrels.get(q, {}).values())]
        notes["unjudged_queries_left_out"] = len(queries) - len(judged)
        chosen, qrels = apply_limit(judged, {q.id: qrels[q.id] for q in judged}, self.limit)
        return Dataset(name=self.dataset_name(), corpus=corpus, queries=chosen, qrels=qrels,
                       split=self.split, source=f"ir_datasets:{self.id}", notes=notes)
