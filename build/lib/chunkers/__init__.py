"""Documents -> chunks. The bottom of the data flow: imports nothing from retrievers or benchmarks."""

from chunkers.base import Chunker, NoChunker, chunk_corpus
from chunkers.types import Chunk, Document, Query, chunk_id

__all__ = ["Chunk", "Chunker", "Document", "NoChunker", "Query", "chunk_corpus", "chunk_id"]
