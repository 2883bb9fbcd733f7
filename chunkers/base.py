"""The chunker protocol and the ``none`` chunker (one chunk per document)."""

from __future__ import annotations

from typing import ClassVar, Iterable, Iterator, Protocol, runtime_checkable

from chunkers.types import Chunk, Document, chunk_id
from chunkers.options import Options, one_of


@runtime_checkable
class Chunker(Protocol):
    """Turns one document into chunks whose spans are exact slices of ``doc.text``."""

    def chunk(self, doc: Document) -> list[Chunk]: ...


def chunk_corpus(chunker: Chunker, docs: Iterable[Document]) -> Iterator[Chunk]:
    for doc in docs:
        yield from chunker.chunk(doc)


#: the ``chunker.aggregate`` values (how chunk scores fold into a document score), defined once
AGGREGATES: tuple[str, ...] = ("max", "sum", "first")


def check_aggregate(mode: str) -> str:
    if mode not in AGGREGATES:
        raise ValueError(f"chunker.aggregate must be one of {'|'.join(AGGREGATES)}, got {mode!r}")
    return mode


class BaseChunker:
    """Holds the option every chunker shares: how chunk scores fold back into a document score."""

    #: what every chunker accepts (subclasses add theirs; the config validator merges along the MRO)
    OPTIONS: ClassVar[Options] = {"aggregate": one_of(*AGGREGATES)}

    def __init__(self, *, aggregate: str = "max") -> None:
        self.aggregate = check_aggregate(aggregate)


class NoChunker(BaseChunker):
    """``chunker=none``: the whole document is one chunk, its title as context (the BEIR baseline)."""

    def chunk(self, doc: Document) -> list[Chunk]:
        return [
            Chunk(
                id=chunk_id(doc.id, 0),
                doc_id=doc.id,
                title=doc.title,
                text=doc.text,
                start=0,
                end=len(doc.text),
                context=doc.title,
                metadata=doc.metadata,
            )
        ]
