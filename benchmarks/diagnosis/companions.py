"""Companion runs: the BM25 and dense rankings (and, for router runs, each route's) that the verdicts consult
to say which fix would have found the evidence. Built with the project's own pipeline builder and caches.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from chunkers.types import Chunk, Document, Query
from retrievers.base import canonical_run, top_k_of
from retrievers.pipeline import build_pipeline
from retrievers.types import Run
from retrievers.versions import successors
from benchmarks.diagnosis.matching import Matcher, normalise
from benchmarks.paths import CONF_DIR

if TYPE_CHECKING:
    from benchmarks.diagnosis.records import Trace


def _find(node: Any, suffix: str) -> Any:
    """First config node (depth-first) whose ``_target_`` ends with ``suffix``."""

    if isinstance(node, DictConfig):
        if str(node.get("_target_", "")).endswith(suffix):
            return node
        for key in node:
            found = _find(node[key], suffix)
            if found is not None:
                return found
    return None


def default_retriever(name: str, cfg: Any) -> Any:
    """``retriever=<name>`` as a run composes it (its groups' nodes included: a dense retriever's encoder), with the
    cache and encoder precision of the run ``cfg``, encoded in this process (``engine=local``)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"retriever={name}", "engine=local"]
    if GlobalHydra.instance().is_initialized():  # inside a run (the story audits its baseline): Hydra's own context
        full = compose(config_name="config", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            full = compose(config_name="config", overrides=overrides)
    for key in ("cache.dir", "cache.mode", "encoder_precision"):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            OmegaConf.update(full, key, value)
    return OmegaConf.create(OmegaConf.to_container(full.retriever, resolve=True))  # resolved: it leaves its config


def companion_run(tree: Any, chunks: Sequence[Chunk], queries: Sequence[Query], *, top_k: int,
                  aggregate: str = "max", groups: Sequence[str] | None = None) -> Run:
    """The one companion builder: a pipeline from ``tree`` (a config holding ``retriever`` and whatever groups
    ``groups`` names; None: the config's own ``pipeline``) built by the run's own builder, indexed on
    ``chunks`` and ranked for ``queries`` (caches are used as in any run)."""
    node = tree if isinstance(tree, DictConfig) else OmegaConf.create(tree)
    stage = build_pipeline(node, aggregate=aggregate, groups=groups)
    stage.index(chunks)
    return stage.rank(queries, top_k=top_k).run


def companion_runs(cfg: Any, dataset: Any, chunks: Sequence[Chunk], top_k: int) -> dict[str, Run]:
    """A run's companions: document-level BM25 and dense runs with the run's chunker (settings from the run's
    own config where it has such a retriever, else the defaults, with the run's cache), and per-route runs
    for router runs (the run's pipeline with the route forced)."""
    out: dict[str, Run] = {}
    aggregate = cfg.get("chunker", {}).get("aggregate", "max")
    for name, suffix in (("bm25", "BM25Retriever"), ("dense", "DenseRetriever")):
        node = _find(cfg, suffix)
        if node is None:  # the run has no such retriever: the defaults, with the run's cache
            node = default_retriever(name, cfg)
        out[name] = companion_run({"retriever": node}, chunks, dataset.queries, top_k=top_k, aggregate=aggregate, groups=())
    router = cfg.get("router")
    if router is not None and router.get("_target_"):
        for route in router.routes:
            forced = OmegaConf.merge(cfg, {"router": {"rules": {"force": str(route)}}})
            out[f"route:{route}"] = canonical_run(companion_run(forced, chunks, dataset.queries, top_k=top_k,
                                                                aggregate=aggregate), top_k)
    return out


# ------------------------------------------------------------------------------------------ traces' corpus
#: metadata keys a loader records a passage's source under (LangChain ``source``, MLflow ``doc_uri``, ...), in order
SOURCE_KEYS = ("doc_id", "document_id", "source", "doc_uri", "file_path", "path", "url", "uri", "source_url",
               "filename", "file_name", "chunk_id")
#: how a passage was attributed to a corpus document, in the order tried (then: ambiguous, unmapped)
ATTRIBUTION_ROUTES = ("id", "source", "text", "ambiguous", "unmapped")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def source_parts(source: str) -> list[str]:
    """The path of a recorded source as parts: a URL's path (percent-decoded; its host, query and fragment
    dropped), a file path (Windows backslashes read as slashes, a ``#fragment`` such as a chunk number dropped)."""
    text = source.strip()
    if _SCHEME.match(text):
        path = unquote(urlsplit(text).path)
    else:
        path = text.split("#", 1)[0]
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


@dataclass
class Attribution:
    """Which corpus document a passage is from: ``doc`` (None when unknown), the ``route`` that decided it
    (:data:`ATTRIBUTION_ROUTES`) and, for an ambiguous passage, the ``candidates`` whose text holds it."""

    doc: str | None
    route: str
    candidates: tuple[str, ...] = ()


@dataclass
class CorpusView:
    docs: dict[str, Document]
    companions: dict[str, dict[str, list[str]]]  # name -> trace id -> ranked doc ids
    section_chunks: dict[str, list[Chunk]]  # doc id -> chunks of chunker=sections
    flat: dict[str, str] = field(default_factory=dict)  # doc id -> " normalised text ", made once
    _words: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (doc id, language) -> content words
    _by_name: dict[str, list[str]] = field(default_factory=dict)  # file name -> doc ids
    _seen: dict[tuple, Attribution] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.flat:
            self.flat = {d: f" {normalise(doc.text)} " for d, doc in self.docs.items()}
        for d in self.docs:
            self._by_name.setdefault(d.rsplit("/", 1)[-1], []).append(d)
        self.meta = {d: dict(doc.metadata) for d, doc in self.docs.items()}

    def by_source(self, source: str) -> str | None:
        """The corpus document a recorded source names: the source itself, else the longest path suffix that is a
        document id (``docs/policies/x.md``, ``/srv/kb/policies/x.md``, ``file://`` and ``https://`` URLs), else its
        file name when exactly one document has it."""
        if source in self.docs:
            return source
        parts = source_parts(source)
        for i in range(len(parts)):
            if "/".join(parts[i:]) in self.docs:
                return "/".join(parts[i:])
        named = self._by_name.get(parts[-1], []) if parts else []
        return named[0] if len(named) == 1 else None

    def attribute(self, ctx: Mapping[str, Any]) -> Attribution:
        """Which document a retrieved passage is from: by its id (a corpus id), then by the source its loader
        recorded (:data:`SOURCE_KEYS`, then the id read as a source), then by its text — and text that several
        documents hold (versions sharing wording) is *ambiguous*, never guessed."""
        meta = ctx.get("metadata") or {}
        key = (ctx.get("doc_id"), ctx.get("id"), ctx.get("text"), tuple(str(meta.get(k)) for k in SOURCE_KEYS))
        if key in self._seen:
            return self._seen[key]
        got = self._attribute(ctx, meta)
        self._seen[key] = got
        return got

    def _attribute(self, ctx: Mapping[str, Any], meta: Mapping[str, Any]) -> Attribution:
        for value in (ctx.get("doc_id"), ctx.get("id")):
            if isinstance(value, str) and value in self.docs:
                return Attribution(value, "id")
        recorded = [meta.get(k) for k in SOURCE_KEYS] + [ctx.get("doc_id"), ctx.get("id")]
        for value in recorded:
            if isinstance(value, str) and value.strip():
                doc = self.by_source(value)
                if doc is not None:
                    return Attribution(doc, "source")
        words = normalise(ctx.get("text") or "").split()
        if not words:
            return Attribution(None, "unmapped")
        head = " ".join(words[:30])
        holders = [d for d in self.docs if f" {head} " in self.flat[d]]
        if len(holders) > 1 and len(words) > 30:
            whole = " ".join(words)
            holders = [d for d in holders if f" {whole} " in self.flat[d]] or holders
        if len(holders) == 1:
            return Attribution(holders[0], "text")
        if holders:
            return Attribution(None, "ambiguous", tuple(holders))
        return Attribution(None, "unmapped")

    def current_holders(self, docs: Sequence[str]) -> list[str]:
        """``docs`` less every superseded one whose newer version is among them (versions sharing wording: the
        current one holds the evidence)."""
        held = set(docs)
        return [d for d in docs if not any(s in held for s in successors(self.meta, d))]

    def holds(self, doc: str, text: str) -> bool:
        """Whether ``doc`` contains ``text`` (normalised containment, as :meth:`Matcher.contained`)."""
        t = normalise(text)
        return bool(t) and f" {t} " in self.flat.get(doc, "")

    def locate(self, piece: str, matcher: Matcher) -> list[str]:
        """Documents holding the piece: contained, else the best content-word recall >= the threshold."""
        hits = [d for d in self.docs if self.holds(d, piece)]
        if hits:
            return hits
        language = matcher.language(piece)
        want = matcher.words(piece, language)
        if not want:
            return []
        for d in self.docs:
            if (d, language) not in self._words:
                self._words[(d, language)] = matcher.words(self.docs[d].text, language)
        best = max(((len(want & self._words[(d, language)]) / len(want), d) for d in self.docs), default=(0.0, None))
        return [best[1]] if best[1] is not None and best[0] >= matcher.threshold else []

    def doc_of(self, ctx: Mapping[str, Any], matcher: Matcher | None = None) -> str | None:
        """The passage's document (:meth:`attribute`), None when unknown or ambiguous."""
        return self.attribute(ctx).doc

    def rank(self, name: str, tid: str, doc: str) -> int | None:
        ranked = self.companions.get(name, {}).get(tid, [])
        return ranked.index(doc) + 1 if doc in ranked else None

    def whole_in_section_chunk(self, piece: str, doc: str, matcher: Matcher) -> bool:
        return any(matcher.contained(piece, c.text) for c in self.section_chunks.get(doc, []))


#: the companion runs over a traces' corpus: name -> (retriever, stage groups); ``--companions`` picks by retriever
TRACE_COMPANIONS = {"bm25": ("bm25", ()), "dense": ("dense", ()), "versions=filter": ("bm25", ("versions",))}
BM25_CHUNKS_PER_S = 5000  # indexing and searching, conservatively, on one core (results/bm25_speed.md is faster)
DENSE_PASSAGES_PER_S = 40  # all-MiniLM-L6-v2 on two CPU cores (../results/encode_speed.md)


def _say(msg: str) -> None:
    print(f"rbench-audit: {msg}", file=sys.stderr, flush=True)


def corpus_view(corpus: list[Document], traces: Sequence[Trace], *, k: int = 10, overrides: Sequence[str] = (),
                companions: Sequence[str] = ("bm25", "dense")) -> CorpusView:
    """Chunk the corpus with ``chunker=sections`` and run the companions over it for the traces' queries (the
    project's own pipeline builder and caches): ``bm25`` (BM25 and version-aware BM25) and ``dense``. What they
    will cost is said before they start (BM25 seconds; dense: passages to encode, or cached)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    queries = [Query(t.id, t.query) for t in traces]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["chunker=sections", "versions=filter", *overrides])
    chunker = instantiate(cfg.chunker)
    chunks = [c for d in corpus for c in chunker.chunk(d)]
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    chosen = [n for n, (retriever, _) in TRACE_COMPANIONS.items() if retriever in companions]
    trees: dict[str, Any] = {}
    for name in chosen:
        retriever, _ = TRACE_COMPANIONS[name]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            rc = compose(config_name="config", overrides=[f"retriever={retriever}", "versions=filter", *overrides])
        trees[name] = OmegaConf.to_container(rc, resolve=True)
    _say(plan(chunks, len(corpus), trees))
    runs: dict[str, dict[str, list[str]]] = {}
    for name in chosen:
        tree = trees[name]
        run = companion_run({"retriever": tree["retriever"], "versions": tree["versions"]}, chunks, queries,
                            top_k=max(k, 100), groups=TRACE_COMPANIONS[name][1])
        runs[name] = {q.id: list(top_k_of(run.get(q.id, {}))) for q in queries}
    return CorpusView({d.id: d for d in corpus}, runs, by_doc)


def plan(chunks: Sequence[Chunk], n_docs: int, trees: Mapping[str, Any]) -> str:
    """One line saying what the companion runs will cost, before they run."""
    parts = []
    if "bm25" in trees:
        seconds = 2 * len(chunks) / BM25_CHUNKS_PER_S
        parts.append(f"BM25 and versions=filter (about {max(1, round(seconds))} s)")
    if "dense" in trees:
        from hydra.utils import instantiate

        retriever = instantiate(trees["dense"]["retriever"])
        cached = getattr(retriever, "cached", lambda _: False)(chunks)
        minutes = len(chunks) / DENSE_PASSAGES_PER_S / 60
        parts.append("dense (embeddings cached)" if cached else
                     f"dense ({len(chunks)} passages to encode, about {max(1, round(minutes))} min on a CPU; "
                     "--companions bm25 skips it)")
    if not parts:
        return f"no companion runs (--companions none): {len(chunks)} chunker=sections chunks of {n_docs} documents"
    return f"companion runs over {len(chunks)} chunker=sections chunks of {n_docs} documents: " + ", ".join(parts)
