"""A corpus's embeddings as shards: the unit of encoding work, of caching and of resuming.

One code path decides the shards; executors only differ in who encodes the missing ones (this process,
Ray tasks, a SLURM job array: :mod:`retrievers.engines`).

* **Boundaries by content.** A shard ends after a passage whose content hash (id + indexed text) falls in a
  1-in-``target`` bucket, between ``target/4`` and ``4*target`` passages. Editing, adding or removing one
  passage changes the shard it sits in (and at most its neighbour), not every shard after it.
* **Content-addressed.** A shard's key hashes the encoder's identity and its passages; its cache entry holds
  ``embeddings.npy`` and ``ids.json`` with a manifest and checksums (:class:`retrievers.cache.Cache`). A run
  encodes only the shards it does not find: an interrupted encode (Ctrl-C, a killed worker) resumes from
  the finished ones.
* **Joined without a second copy in memory.** The shards are copied, memory-mapped, into one ``.npy`` (the
  dense retriever's embeddings entry); rows follow the corpus order, so the result equals encoding the
  corpus in one process (the same calls of ``step`` texts, aligned to the shards, either way).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from chunkers.types import Chunk
from retrievers.base import chunks_digest
from retrievers.cache import Cache

KIND = "embedding-shards"
TARGET = 4096  # passages per shard, on average
STEP = 64      # texts per encoder call: the progress bar moves at least this often


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int
    key: str

    def __len__(self) -> int:
        return self.stop - self.start


def _bucket(chunk: Chunk) -> int:
    h = hashlib.blake2b(chunk.id.encode("utf-8") + b"\x00" + chunk.indexed_text.encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def boundaries(chunks: Sequence[Chunk], target: int = TARGET) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``chunks`` in order, cut by content (see the module's docstring)."""
    target = max(1, int(target))
    lo, hi = max(1, target // 4), max(1, target * 4)
    out, start = [], 0
    for i, chunk in enumerate(chunks):
        size = i - start + 1
        if size >= hi or (size >= lo and _bucket(chunk) % target == 0):
            out.append((start, i + 1))
            start = i + 1
    if start < len(chunks):
        out.append((start, len(chunks)))
    return out


def shard_key(chunks: Sequence[Chunk], identity: Any) -> str:
    return Cache.key({"what": "embedding-shard", "passages": chunks_digest(chunks), "encoder": identity})



def plan(chunks: Sequence[Chunk], identity: Any, target: int | None = None) -> list[Shard]:
    """The corpus's shards (``target``: passages per shard on average, default :data:`TARGET`)."""
    cuts = boundaries(chunks, TARGET if target is None else target)
    return [Shard(i, a, b, shard_key(chunks[a:b], identity)) for i, (a, b) in enumerate(cuts)]


def encode_texts(encode: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], *, step: int = STEP,
                 on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """``texts`` encoded in calls of ``step`` (the same calls whoever encodes them), as one float32 matrix."""
    parts = []
    for i in range(0, len(texts), step):
        part = texts[i:i + step]
        parts.append(np.asarray(encode(part), dtype=np.float32))
        if on_step is not None:
            on_step(len(part))
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def write_shard(cache: Cache, shard: Shard, texts: Sequence[str], ids: Sequence[str],
                encode: Callable[[Sequence[str]], np.ndarray], identity: Any, *, step: int = STEP,
                on_step: Callable[[int], None] | None = None) -> Path | None:
    """Encode one shard (its passages' ``texts`` and ``ids``) and publish it as its own cache entry."""
    emb = encode_texts(encode, list(texts), step=step, on_step=on_step)

    def write(folder: Path) -> None:
        np.save(folder / "embeddings.npy", emb)
        (folder / "ids.json").write_text(json.dumps(list(ids)), encoding="utf-8")

    return cache.put(KIND, shard.key, write, {"what": "float32 embeddings of one shard, row i = ids.json[i]",
                                               "rows": len(ids), "start": shard.start, "encoder": identity})


@dataclass(frozen=True)
class ShardStore:
    """How a stage's shards are cached: the cache kind their entries live under and the function that encodes one
    shard and publishes it (``write(cache, shard, texts, ids, encode, identity, *, step, on_step)``). Module-level
    functions only, so an engine can send it to Ray actors and SLURM jobs."""

    kind: str
    write: Callable[..., Any]


#: dense embeddings (float32 ``.npy``); SPLADE's vectors: ``retrievers.splade.SPARSE_SHARDS``
EMBEDDINGS = ShardStore(KIND, write_shard)


def present(cache: Cache, shard: Shard, store: ShardStore = EMBEDDINGS) -> bool:
    """Whether a complete, intact entry of this shard exists (never with ``cache.mode=refresh``)."""
    return cache.get(store.kind, shard.key) is not None


def missing(cache: Cache, shards: Sequence[Shard], store: ShardStore = EMBEDDINGS) -> list[Shard]:
    return [s for s in shards if not present(cache, s, store)]


def join(cache: Cache, shards: Sequence[Shard], ids: Sequence[str], out: Path) -> int:
    """Copy the shards' embeddings, in corpus order, into one memory-mapped ``.npy`` at ``out``; check every
    shard's ids against the corpus's. Returns the embedding dimension."""
    target = None
    for shard in shards:
        entry = cache.entry(KIND, shard.key)  # just written or found by :func:`missing` (``refresh`` reads none)
        if not (entry / "ids.json").is_file():
            raise RuntimeError(f"embedding shard {shard.index} ({shard.key}) is missing from {cache.dir / KIND}")
        stored = json.loads((entry / "ids.json").read_text(encoding="utf-8"))
        if stored != list(ids[shard.start:shard.stop]):
            raise RuntimeError(f"embedding shard {shard.index} ({entry}) holds other passages than the corpus's "
                               f"rows {shard.start}..{shard.stop - 1}")
        emb = np.load(entry / "embeddings.npy", mmap_mode="r")
        if target is None:
            target = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(len(ids), emb.shape[1]))
        target[shard.start:shard.stop] = emb
    if target is None:
        raise ValueError("no shards to join")
    target.flush()
    dim = int(target.shape[1])
    del target
    return dim


def drop(cache: Cache, shards: Sequence[Shard], store: ShardStore = EMBEDDINGS) -> None:
    """Remove the shard entries once joined (the joined entry holds the same rows: no second copy on disk)."""
    import shutil

    for shard in shards:
        shutil.rmtree(cache.entry(store.kind, shard.key), ignore_errors=True)
