"""Sharded encoding (#23, #24): boundaries by content, shard = its own cache entry, an interrupted encode
resumes from the finished shards and leaves no lock; the joined embeddings equal unsharded ones, bit for bit."""

import numpy as np
import pytest

from chunkers import Document, NoChunker
from fakes import CountingEncoder
from retrievers import shards
from retrievers.cache import Cache
from retrievers.dense import DenseRetriever

DOCS = [Document(f"d{i}", f"T{i}", f"passage {i} about topic {i % 7} and item {i * 13 % 101}") for i in range(600)]
CHUNKS = [c for d in DOCS for c in NoChunker().chunk(d)]


def test_boundaries_cover_the_corpus_and_follow_content():
    cuts = shards.boundaries(CHUNKS, target=40)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(CHUNKS)
    assert all(a < b for a, b in cuts) and all(b == c for (_, b), (c, _) in zip(cuts, cuts[1:]))
    sizes = [b - a for a, b in cuts[:-1]]
    assert min(sizes) >= 10 and max(sizes) <= 160 and 5 < len(cuts) < 60
    # one passage inserted in the middle: shards before it keep their keys, and shards after it come back
    ident = {"encoder": "x"}
    before = {s.key for s in shards.plan(CHUNKS, ident, target=40)}
    extra = NoChunker().chunk(Document("new", "N", "an inserted passage"))[0]
    after = shards.plan(CHUNKS[:300] + [extra] + CHUNKS[300:], ident, target=40)
    assert len({s.key for s in after} - before) <= 2
    assert shards.boundaries(CHUNKS[:3], target=40) == [(0, 3)]  # a corpus smaller than a shard: one shard


def test_sharded_equals_unsharded_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "TARGET", 40)
    sharded = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / "c"))
    sharded.index(CHUNKS)
    plain = CountingEncoder().encode([c.indexed_text for c in CHUNKS], kind="doc")
    off = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path / "off"), cache_mode="off")
    off.index(CHUNKS)
    assert np.array_equal(np.asarray(sharded._emb), plain) and np.array_equal(off._emb, plain)
    assert isinstance(sharded._emb, np.memmap)
    # the shard entries are dropped once joined: no second copy on disk
    assert not [p for p in (tmp_path / "c" / shards.KIND).iterdir() if not p.name.startswith(".")]


class Interrupting(CountingEncoder):
    """Ctrl-C after ``after`` texts."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def encode(self, texts, *, kind):
        if kind == "doc" and self.texts + len(texts) > self.after:
            raise KeyboardInterrupt
        return super().encode(texts, kind=kind)


def test_an_interrupted_encode_resumes_from_its_finished_shards(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shards, "TARGET", 40)
    cache = tmp_path / "c"
    plan = shards.plan(CHUNKS, CountingEncoder().identity(), target=40)
    with pytest.raises(KeyboardInterrupt):
        DenseRetriever(encoder=Interrupting(after=300), cache_dir=str(cache)).index(CHUNKS)
    finished = [s for s in plan if shards.present(Cache(cache), s)]
    assert finished and sum(len(s) for s in finished) <= 300 and len(finished) < len(plan)
    assert not list(cache.rglob("*.lock")) and not list(cache.rglob(".tmp-*"))  # no lock, no half entry
    enc = CountingEncoder()
    resumed = DenseRetriever(encoder=enc, cache_dir=str(cache))
    resumed.index(CHUNKS)
    assert enc.texts == len(CHUNKS) - sum(len(s) for s in finished)  # only the missing shards are encoded
    assert "resuming" in capsys.readouterr().err
    plain = CountingEncoder().encode([c.indexed_text for c in CHUNKS], kind="doc")
    assert np.array_equal(np.asarray(resumed._emb), plain)
    assert not list(cache.rglob("*.lock"))


def test_the_encode_bar_moves_every_step(tmp_path, monkeypatch):
    """The bar is updated after every encoder call of ``shards.STEP`` texts, not every 512."""
    import retrievers.engines as engines

    updates = []

    class Spy(engines.Progress):
        def update(self, n=1):
            updates.append(n)
            super().update(n)

    monkeypatch.setattr(engines, "Progress", Spy)
    enc = CountingEncoder()
    DenseRetriever(encoder=enc, cache_dir=str(tmp_path)).index(CHUNKS)
    assert max(updates) <= shards.STEP and sum(updates) == len(CHUNKS) and enc.calls == len(updates)


def test_a_shard_with_other_passages_is_refused(tmp_path):
    cache = Cache(tmp_path)
    ident = CountingEncoder().identity()
    plan = shards.plan(CHUNKS[:50], ident, target=1000)
    enc = CountingEncoder()
    shards.write_shard(cache, plan[0], [c.indexed_text for c in CHUNKS[:50]], [c.id for c in CHUNKS[:50]],
                       lambda t: enc.encode(t, kind="doc"), ident)
    with pytest.raises(RuntimeError, match="other passages"):
        shards.join(cache, plan, [c.id for c in CHUNKS[1:51]], tmp_path / "out.npy")


class _InterruptedAfter(CountingEncoder):
    """Ctrl-C arrives once ``after`` texts were encoded (the encoder is in the middle of a call)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def encode(self, texts, *, kind):
        if self.texts + len(texts) > self.after:
            raise KeyboardInterrupt()
        return super().encode(texts, kind=kind)


@pytest.mark.parametrize("target,after,said", [
    (10_000, 150, r"dense: no shard of the corpus was finished \(1 shard, the whole corpus\), so nothing encoded is kept"),
    (40, 130, r"dense: [1-9]\d* of \d+ encoded shards are kept in the cache; the same command resumes from them"),
])
def test_an_interrupted_encode_says_truly_what_the_next_run_finds(tmp_path, monkeypatch, target, after, said):
    """#36: Ctrl-C during the encode of a one-shard corpus said 'finished encoder shards stay in the cache: the same
    command resumes from them', and the rerun started again at 0. The note now counts the shards kept; the next run
    encodes exactly the rest."""
    import re

    monkeypatch.setattr(shards, "TARGET", target)
    r = DenseRetriever(encoder=_InterruptedAfter(after), cache_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt) as caught:
        r.index(CHUNKS)
    assert re.search(said, caught.value.rbench_resume), caught.value.rbench_resume
    plan = shards.plan(CHUNKS, CountingEncoder().identity(), target)
    kept = sum(len(s) for s in plan) - sum(len(s) for s in shards.missing(Cache(tmp_path), plan))
    again = DenseRetriever(encoder=CountingEncoder(), cache_dir=str(tmp_path))
    again.index(CHUNKS)
    assert again.encoded_texts == len(CHUNKS) - kept and (kept == 0) == (target == 10_000)
