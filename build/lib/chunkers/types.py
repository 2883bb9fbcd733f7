"""The data model every stage shares: documents in, chunks out, queries alongside.

Plain, frozen dataclasses at the boundaries. It lives in ``chunkers`` because chunkers are the bottom of
the data flow: retrievers and benchmarks import it from here, never the reverse. Runs, qrels and stage
results are the retrieval data model, in :mod:`retrievers.types`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

CHUNK_SEP = "#"


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Document:
    """A corpus document. ``metadata`` carries version fields, doc_type, etc."""

    id: str
    title: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))


@dataclass(frozen=True)
class Chunk:
    """A retrievable span of a document: ``text == document.text[start:end]`` exactly.

    ``context`` is text indexed with the chunk (title, heading path) that is not part of the span.
    ``metadata`` is inherited from the document. Ids are ``<doc_id>#<n>``.
    """

    id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    context: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))

    @property
    def indexed_text(self) -> str:
        """What retrievers index: the context followed by the span."""
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass(frozen=True)
class Query:
    """A query; ``metadata`` holds labels, gold evidence spans, answers, decompositions."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))


def chunk_id(doc_id: str, n: int) -> str:
    return f"{doc_id}{CHUNK_SEP}{n}"
