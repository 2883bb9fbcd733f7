"""Auditing production traces: what your own RAG system retrieved, whether the answer was in it, and why not.

``rbench-audit --traces FILE [--corpus DIR]`` reads one logged query per line (``.jsonl``) or a JSON list:

* required: ``query`` and ``contexts``, a list of ``{id, text}`` with optional ``doc_id``, ``score``, ``rank``;
* optional: ``answer``, ``reference`` (a reference answer or evidence text, or a list of evidence texts),
  ``feedback``, ``_id``.

It also reads retrieval spans exported in the OpenInference / OpenTelemetry convention: a span whose
attributes hold ``input.value`` and ``retrieval.documents.<i>.document.{id,content,score}`` — as flat keys,
nested objects, or OTLP ``{"key", "value": {"stringValue": ...}}`` lists, one span per line or an OTLP JSON
export (``resourceSpans``). Spans without retrieval documents (LLM, chain spans) are skipped and counted.

For each trace with a reference the audit decides whether the reference reached the context: a piece is
*reached* when its normalised text (case, punctuation and whitespace folded) is contained in one context,
or when the contexts together hold at least ``recall_threshold`` (default 0.8) of its content words
(stemmed, stopwords removed) and every number it contains (``EUR 150`` does not reach a ``EUR 180`` reference). A miss gets one cause, in the run audit's vocabulary and order:
``stale_version``, ``chunk_boundary``, ``multi_hop``, ``exact_term``, ``other``. With ``--corpus`` the
corpus is read (a documents folder, as ``dataset=files``, or a BEIR folder), the reference is located in
it, and BM25, dense and version-aware (``versions=filter``) companions are run over it with
``chunker=sections`` to say where the evidence was and which fix would have found it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from chunkers.types import Chunk, Document, Query
from benchmarks.errors import DataError

RECALL_THRESHOLD = 0.8
FAILED_WHAT = "its reference is not in the retrieved context"
_DOC_KEY = re.compile(r"^retrieval\.documents\.(\d+)\.document\.(id|content|score|metadata)$")


@dataclass
class Trace:
    where: int | str  # line number, or "record N" / "span N"
    id: str
    query: str
    contexts: list[dict[str, Any]]
    reference: list[str] = field(default_factory=list)
    answer: str | None = None
    feedback: Any = None


# ------------------------------------------------------------------------------------------ reading
def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested attribute objects and lists as dotted keys (``retrieval.documents.0.document.id``)."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(node, list) and prefix.endswith("documents"):
        for i, v in enumerate(node):
            out.update(_flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = node
    return out


def _otlp_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as Python; ValueError for one that does not hold what its key says."""
    if isinstance(value, dict):
        for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
            if key in value:
                v = value[key]
                if key == "intValue":  # protobuf JSON writes 64-bit integers as strings
                    if isinstance(v, bool) or not isinstance(v, (int, str)) or not str(v).lstrip("-").isdigit():
                        raise ValueError(f"intValue {v!r} is not an integer")
                    return int(v)
                return v
        if "arrayValue" in value:
            arr = value["arrayValue"]
            values = arr.get("values", []) if isinstance(arr, dict) else None
            if not isinstance(values, list):
                raise ValueError("arrayValue must be an object with a list 'values'")
            return [_otlp_value(v) for v in values]
    return value


def span_attributes(span: Mapping[str, Any]) -> dict[str, Any]:
    attrs = span.get("attributes", span)
    if isinstance(attrs, list):  # OTLP: [{"key": ..., "value": {"stringValue": ...}}]
        attrs = {a.get("key"): _otlp_value(a.get("value")) for a in attrs if isinstance(a, dict)}
    return _flatten(attrs) if isinstance(attrs, dict) else {}


def trace_from_span(span: Mapping[str, Any], where: int | str, path: Path) -> Trace | None:
    """A retriever span as a trace; None for a span with no retrieval documents."""
    if not isinstance(span, Mapping):
        raise DataError(f"a span must be a JSON object, got {type(span).__name__}", path=path, line=where)
    try:
        attrs = span_attributes(span)
    except ValueError as err:
        raise DataError(f"span attribute: {err}", path=path, line=where) from None
    docs: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        m = _DOC_KEY.match(key)
        if m:
            docs.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not docs:
        return None
    query = attrs.get("input.value")
    if not isinstance(query, str) or not query.strip():
        raise DataError("retriever span without a string 'input.value' (the query)", path=path, line=where)
    contexts = []
    for rank, i in enumerate(sorted(docs), 1):
        d = docs[i]
        if not isinstance(d.get("content"), str):
            raise DataError(f"retrieval.documents.{i}.document.content is missing or not a string", path=path, line=where)
        contexts.append({"id": str(d.get("id", f"doc{i}")), "text": d["content"], "doc_id": str(d["id"]) if d.get("id") else None,
                         "score": d.get("score"), "rank": rank})
    sid = span.get("context", {}).get("span_id") if isinstance(span.get("context"), dict) else None
    sid = sid or span.get("spanId") or span.get("span_id")
    return Trace(where, str(sid or f"span-{where}"), query.strip(), contexts)


def _record(obj: Mapping[str, Any], where: int | str, path: Path) -> Trace:
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DataError("field 'query' must be a non-empty string"
                        + (" (fields present: " + ", ".join(sorted(obj)) + ")" if "query" not in obj else ""), path=path, line=where)
    contexts = obj.get("contexts")
    if not isinstance(contexts, list):
        raise DataError(f"field 'contexts' must be a list of {{id, text}} objects, got {type(contexts).__name__}",
                        path=path, line=where)
    out = []
    for i, ctx in enumerate(contexts):
        if not isinstance(ctx, dict) or not isinstance(ctx.get("text"), str):
            raise DataError(f"contexts[{i}] must be an object with a string 'text'", path=path, line=where)
        if ctx.get("id") in (None, ""):
            raise DataError(f"contexts[{i}] has no 'id'", path=path, line=where)
        score = ctx.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise DataError(f"contexts[{i}].score must be a number, got {score!r}", path=path, line=where)
        out.append({"id": str(ctx["id"]), "text": ctx["text"], "doc_id": str(ctx["doc_id"]) if ctx.get("doc_id") else None,
                    "score": score, "rank": ctx.get("rank", i + 1), "metadata": ctx.get("metadata") or {}})
    out.sort(key=lambda c: (c["rank"] if isinstance(c["rank"], (int, float)) else 1e9))
    ref = obj.get("reference")
    if ref is None or ref == "":
        pieces: list[str] = []
    elif isinstance(ref, str):
        pieces = [ref]
    elif isinstance(ref, list) and all(isinstance(x, str) and x.strip() for x in ref):
        pieces = list(ref)
    else:
        raise DataError("field 'reference' must be a string or a list of non-empty strings", path=path, line=where)
    tid = str(obj.get("_id") or obj.get("id") or (f"line-{where}" if isinstance(where, int) else str(where).replace(" ", "-")))
    return Trace(where, tid, query.strip(), out, pieces, obj.get("answer"), obj.get("feedback"))


def _list_of(node: Any, key: str, where: int | str, path: Path) -> list[Any]:
    """``node[key]`` of an OTLP export as a list of objects (absent or null: empty); anything else is an error."""
    if not isinstance(node, Mapping):
        raise DataError(f"OTLP export: expected an object holding {key!r}, got {type(node).__name__}", path=path, line=where)
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise DataError(f"OTLP export: {key!r} must be a list of objects, got "
                        f"{type(value).__name__ if not isinstance(value, list) else 'a list holding other values'}",
                        path=path, line=where)
    return value


def _from_object(obj: Mapping[str, Any], where: int | str, path: Path, skipped: list[int]) -> Iterable[Trace]:
    if "resourceSpans" in obj:
        n = 0
        for rs in _list_of(obj, "resourceSpans", where, path):
            scope_key = "scopeSpans" if "scopeSpans" in rs else "instrumentationLibrarySpans"
            for ss in _list_of(rs, scope_key, where, path):
                for span in _list_of(ss, "spans", where, path):
                    n += 1
                    t = trace_from_span(span, f"{where}, span {n}" if where else f"span {n}", path)
                    if t is None:
                        skipped[0] += 1
                    else:
                        yield t
    elif "query" in obj or "contexts" in obj:
        yield _record(obj, where, path)
    elif "attributes" in obj or any(str(k).startswith(("input.", "retrieval.")) for k in obj):
        t = trace_from_span(obj, where, path)
        if t is None:
            skipped[0] += 1
        else:
            yield t
    else:
        raise DataError("neither a trace (query, contexts) nor an OpenInference span (attributes with input.value "
                        f"and retrieval.documents.*); fields: {', '.join(sorted(map(str, obj)))[:120]}", path=path, line=where)


def read_traces(path: str | Path) -> tuple[list[Trace], int]:
    """The traces of a file, and how many spans were skipped (no retrieval documents)."""
    from benchmarks.datasets.base import read_json_records

    path = Path(path)
    if not path.exists():
        raise DataError("traces file not found", path=path)
    skipped = [0]
    out: list[Trace] = []
    seen: dict[str, int | str] = {}
    for where, obj in read_json_records(path):
        for t in _from_object(obj, where, path, skipped):
            if t.id in seen:
                t.id = f"{t.id}@{where}"
            seen[t.id] = where
            out.append(t)
    if not out:
        raise DataError("no traces (and no retriever spans) in the file", path=path)
    return out, skipped[0]


# ------------------------------------------------------------------------------------------ matching
def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


class Matcher:
    """Containment and content-word recall of reference pieces in contexts."""

    def __init__(self, threshold: float = RECALL_THRESHOLD) -> None:
        from retrievers.text import Tokenizer

        self.threshold = float(threshold)
        self.tok = Tokenizer()

    def words(self, text: str) -> set[str]:
        return set(self.tok(text))

    def contained(self, piece: str, text: str) -> bool:
        p = normalise(piece)
        return bool(p) and f" {p} " in f" {normalise(text)} "

    def recall(self, piece: str, texts: Sequence[str]) -> float:
        want = self.words(piece)
        if not want:
            return 0.0
        have: set[str] = set()
        for t in texts:
            have |= self.words(t)
        return len(want & have) / len(want)

    def reached(self, piece: str, texts: Sequence[str]) -> tuple[bool, str]:
        for i, t in enumerate(texts):
            if self.contained(piece, t):
                return True, f"contained in context #{i + 1}"
        r = self.recall(piece, texts)
        numbers = set(re.findall(r"\d+(?:[.,]\d+)*", piece))
        lost = sorted(n for n in numbers if not any(re.search(rf"(?<![\d.,]){re.escape(n)}(?![\d]|[.,]\d)", t) for t in texts))
        if r >= self.threshold and not lost:
            return True, f"token recall {r:.2f} >= {self.threshold:g}"
        why = f"token recall {r:.2f}" + (f" but {', '.join(lost)} is in no context" if lost and r >= self.threshold
                                           else f" < {self.threshold:g}")
        return False, f"not contained in any context; {why}"


def cut_at_edge(piece: str, texts: Sequence[str], min_words: int = 3) -> str | None:
    """A piece whose first words end a context, or whose last words begin one: the chunk boundary cut it."""
    words = normalise(piece).split()
    if len(words) < 2 * min_words:
        return None
    for i, t in enumerate(texts):
        ctx = normalise(t).split()
        for j in range(len(words) - 1, max(min_words, len(words) // 4) - 1, -1):
            if ctx[-j:] == words[:j]:
                return f"context #{i + 1} ends with the reference's first {j} of {len(words)} words: the rest was cut off"
            if ctx[:j] == words[-j:]:
                return f"context #{i + 1} begins with the reference's last {j} of {len(words)} words: its start was cut off"
    return None


# ------------------------------------------------------------------------------------------ corpus side
@dataclass
class CorpusView:
    docs: dict[str, Document]
    companions: dict[str, dict[str, list[str]]]  # name -> trace id -> ranked doc ids
    section_chunks: dict[str, list[Chunk]]  # doc id -> chunks of chunker=sections
    flat: dict[str, str] = field(default_factory=dict)  # doc id -> " normalised text ", made once
    _words: dict[str, set[str]] = field(default_factory=dict)  # doc id -> content words, made when first asked

    def __post_init__(self) -> None:
        if not self.flat:
            self.flat = {d: f" {normalise(doc.text)} " for d, doc in self.docs.items()}

    def holds(self, doc: str, text: str) -> bool:
        """Whether ``doc`` contains ``text`` (normalised containment, as :meth:`Matcher.contained`)."""
        t = normalise(text)
        return bool(t) and f" {t} " in self.flat.get(doc, "")

    def locate(self, piece: str, matcher: Matcher) -> list[str]:
        """Documents holding the piece: contained, else the best content-word recall >= the threshold."""
        hits = [d for d in self.docs if self.holds(d, piece)]
        if hits:
            return hits
        want = matcher.words(piece)
        if not want:
            return []
        for d in self.docs:
            if d not in self._words:
                self._words[d] = matcher.words(self.docs[d].text)
        best = max(((len(want & self._words[d]) / len(want), d) for d in self.docs), default=(0.0, None))
        return [best[1]] if best[1] is not None and best[0] >= matcher.threshold else []

    def doc_of(self, ctx: Mapping[str, Any], matcher: Matcher) -> str | None:
        if ctx.get("doc_id") in self.docs:
            return ctx["doc_id"]
        if ctx.get("id") in self.docs:
            return ctx["id"]
        head = " ".join(normalise(ctx["text"]).split()[:30])
        return next((d for d in self.docs if head and head in self.flat[d]), None) if head else None

    def rank(self, name: str, tid: str, doc: str) -> int | None:
        ranked = self.companions.get(name, {}).get(tid, [])
        return ranked.index(doc) + 1 if doc in ranked else None

    def whole_in_section_chunk(self, piece: str, doc: str, matcher: Matcher) -> bool:
        return any(matcher.contained(piece, c.text) for c in self.section_chunks.get(doc, []))


def read_corpus_dir(path: str | Path) -> list[Document]:
    from benchmarks.datasets.base import data_file

    root = Path(path)
    if not root.is_dir():
        raise DataError("--corpus: not a folder", path=root)
    if data_file(root / "corpus.jsonl").is_file():
        from benchmarks.datasets.beir import read_corpus

        return read_corpus(root / "corpus.jsonl")
    from benchmarks.datasets.files import read_documents

    return read_documents(root)


def corpus_view(corpus: list[Document], traces: Sequence[Trace], *, k: int = 10,
                overrides: Sequence[str] = ()) -> CorpusView:
    """Chunk the corpus with ``chunker=sections`` and run BM25, dense and version-aware BM25 over it for the
    traces' queries (the project's own pipeline builder and caches)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from benchmarks.paths import CONF_DIR
    from retrievers.pipeline import build_pipeline
    from retrievers.base import top_k_of

    queries = [Query(t.id, t.query) for t in traces]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["chunker=sections", "versions=filter", *overrides])
    chunker = instantiate(cfg.chunker)
    chunks = [c for d in corpus for c in chunker.chunk(d)]
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    runs: dict[str, dict[str, list[str]]] = {}
    for name, retriever, groups in (("bm25", "bm25", ()), ("dense", "dense", ()), ("versions=filter", "bm25", ("versions",))):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            rc = compose(config_name="config", overrides=[f"retriever={retriever}", "versions=filter", *overrides])
        tree = OmegaConf.to_container(rc, resolve=True)
        stage = build_pipeline(OmegaConf.create({"retriever": tree["retriever"], "versions": tree["versions"]}),
                               aggregate="max", groups=groups)
        stage.index(chunks)
        run = stage.rank(queries, top_k=max(k, 100)).run
        runs[name] = {q.id: list(top_k_of(run.get(q.id, {}))) for q in queries}
    return CorpusView({d.id: d for d in corpus}, runs, by_doc)


# ------------------------------------------------------------------------------------------ verdicts
def judge(trace: Trace, matcher: Matcher, view: CorpusView | None, k: int) -> dict[str, Any]:
    """The audit row of one trace: contexts, whether each reference piece was reached, and for a miss the
    verdict, its evidence, where the evidence was and which fix finds it."""
    texts = [c["text"] for c in trace.contexts]
    ctx_docs = [view.doc_of(c, matcher) if view else (c.get("doc_id") or None) for c in trace.contexts]
    pieces = [(p, *matcher.reached(p, texts)) for p in trace.reference]
    gold: dict[str, list[str]] = {}  # piece -> documents holding it
    if view is not None:
        gold = {p: view.locate(p, matcher) for p in trace.reference}
    gold_docs = sorted({d for ds in gold.values() for d in ds})
    row: dict[str, Any] = {
        "query_id": trace.id, "query": trace.query, "judged": bool(trace.reference), "k": k, "line": trace.where,
        "gold_docs": gold_docs,
        "docs": [{"rank": i + 1, "doc_id": ctx_docs[i] or c["id"], "score": c["score"],
                  "gold": any(matcher.contained(p, c["text"]) for p in trace.reference), "text": c["text"]}
                 for i, c in enumerate(trace.contexts)],
        "gold_in_top_k": sorted(set(gold_docs) & {d for d in ctx_docs if d}),
        "reached": all(ok for _, ok, _ in pieces) if pieces else None,
        "pieces": [{"reference": p, "reached": ok, "how": how} for p, ok, how in pieces],
    }
    if not pieces or row["reached"]:
        return row
    missed = [p for p, ok, _ in pieces if not ok]
    verdict, evidence = _cause(trace, missed, pieces, texts, ctx_docs, gold, view, k)
    row.update({"verdict": verdict, "evidence": evidence,
                "trace": {"reference": missed, "where": _where(missed, gold, view, matcher), "fix": _fix(verdict, trace, missed, gold, view, matcher, k)}})
    return row


def _cause(trace: Trace, missed: Sequence[str], pieces: Sequence[tuple[str, bool, str]], texts: Sequence[str],
           ctx_docs: Sequence[str | None], gold: Mapping[str, list[str]], view: CorpusView | None,
           k: int) -> tuple[str, str]:
    """The first cause, in the run audit's order, of a trace whose reference did not reach the context."""
    from retrievers.query_features import identifiers
    from retrievers.versions import is_stale

    meta = (lambda d: view.docs[d].metadata if view and d in view.docs else {})
    # 1. stale_version: a passage comes from a superseded or deprecated document
    for i, (c, d) in enumerate(zip(trace.contexts, ctx_docs)):
        m = dict(meta(d)) if d else {}
        m.update(c.get("metadata") or {})
        if is_stale(m):
            holders = sorted({h for p in missed for h in gold.get(p, [])})
            newer = m.get("superseded_by")
            if newer and (not holders or newer in holders):
                return "stale_version", (f"context #{i + 1} is from {d or c['id']}, superseded by {newer}"
                                         + (" (which holds the reference)" if newer in holders else ""))
            if not newer and (not holders or d not in holders):
                return "stale_version", f"context #{i + 1} is from {d or c['id']}, which is deprecated"
    # 2. chunk_boundary: the right document was retrieved, the passage did not hold the reference whole
    from benchmarks.datasets.files import locate

    for p in missed:
        edge = cut_at_edge(p, texts)
        if edge:
            return "chunk_boundary", edge
        for d in gold.get(p, []):
            span = locate(view.docs[d].text, p) if view else None
            for i, (c, cd) in enumerate(zip(trace.contexts, ctx_docs)):
                at = locate(view.docs[d].text, c["text"]) if span and cd == d else None
                if at and at[0] < span[1] and span[0] < at[1]:  # the passage overlaps the evidence, without holding it
                    return "chunk_boundary", (f"context #{i + 1} is the part [{at[0]}:{at[1]}] of {d}, which cuts the "
                                              f"evidence at [{span[0]}:{span[1]}]")
    # 3. multi_hop: some evidence reached, some not
    if len(pieces) > 1 and any(ok for _, ok, _ in pieces):
        n_ok = sum(ok for _, ok, _ in pieces)
        where = {d for p in missed for d in gold.get(p, [])}
        return "multi_hop", (f"{n_ok} of {len(pieces)} reference pieces reached the context; missing "
                             + (f"evidence in {', '.join(sorted(where))}" if where else repr(missed[0][:60])))
    # 4. exact_term: an identifier of the query is in no passage (and, with the corpus, BM25 finds the evidence)
    context = normalise(" ".join(texts))
    absent = [t for t in identifiers(trace.query) if normalise(t) and f" {normalise(t)} " not in f" {context} "]
    if view is not None:
        for p in missed:
            for d in gold.get(p, []):
                b, dn = view.rank("bm25", trace.id, d), view.rank("dense", trace.id, d)
                if b is not None and b <= k and (dn is None or dn > k):
                    return "exact_term", (f"BM25 ranks {d} #{b}, dense " + (f"#{dn}" if dn else "not at all")
                                          + (f"; the query's {absent[0]!r} is in no passage" if absent else ""))
        absent = [t for t in absent if any(view.holds(d, t) for p in missed for d in gold.get(p, []))] if gold else absent
    if absent:
        return "exact_term", f"the query's {absent[0]!r} is in none of the {len(texts)} passages"
    # 5. other
    holders = sorted({d for p in missed for d in gold.get(p, [])})
    if view is not None and holders:
        return "other", f"the reference is in {', '.join(holders)}, which no passage comes from; no cause above applies"
    return "other", "the reference is in no passage; no cause above applies" + ("" if view else " (give --corpus to look further)")


def _where(missed: Sequence[str], gold: Mapping[str, list[str]], view: CorpusView | None, matcher: Matcher) -> str:
    if view is None:
        return ""
    parts = []
    for p in missed:
        docs = gold.get(p, [])
        if not docs:
            parts.append(f"{p[:50]!r} is in no corpus document")
            continue
        from benchmarks.datasets.files import locate

        at = locate(view.docs[docs[0]].text, p)
        parts.append(f"{p[:50]!r} is in {docs[0]}" + (f" [{at[0]}:{at[1]}]" if at else "")
                     + (f" (and {len(docs) - 1} more)" if len(docs) > 1 else ""))
    return "; ".join(parts)


def _fix(verdict: str, trace: Trace, missed: Sequence[str], gold: Mapping[str, list[str]], view: CorpusView | None,
         matcher: Matcher, k: int) -> str:
    if view is None:
        return {"stale_version": "versions=filter or versions=decay (with version metadata on the corpus)",
                "chunk_boundary": "chunker=sections (structure-aware chunks)",
                "multi_hop": "decomposer=heuristic or decomposer=llm",
                "exact_term": "retriever=bm25 or retriever=hybrid"}.get(verdict, "")
    docs = sorted({d for p in missed for d in gold.get(p, [])})
    if not docs:
        return "the evidence is not in the corpus: no retrieval setting can find it"
    d = docs[0]
    ranks = {n: view.rank(n, trace.id, d) for n in ("bm25", "dense", "versions=filter")}
    shown = ", ".join(f"{n} #{r}" if r else f"{n} not in the top 100" for n, r in ranks.items())
    found = [n for n, r in ranks.items() if r is not None and r <= k]
    whole = all(view.whole_in_section_chunk(p, dd, matcher) for p in missed for dd in gold.get(p, [])[:1])
    advice = {"stale_version": "versions=filter", "chunk_boundary": "chunker=sections" if whole else "a larger chunker.size",
              "exact_term": "retriever=bm25 or retriever=hybrid", "multi_hop": "decomposer=heuristic (one search per hop)"}
    first = advice.get(verdict) or (f"retriever={found[0]}" if found else "")
    return (f"{d}: {shown} (chunker=sections)" + ("; a chunker=sections chunk holds the reference whole" if whole else "")
            + (f"; try {first}" if first else ""))


# ------------------------------------------------------------------------------------------ the audit
def audit_traces(path: str | Path, *, corpus_dir: str | Path | None = None, k: int = 10,
                 threshold: float = RECALL_THRESHOLD, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read, judge and diagnose every trace: rows, verdicts, signals, documents (for the report)."""
    from benchmarks.signals import Corpus, query_signals

    traces, skipped = read_traces(path)
    matcher = Matcher(threshold)
    corpus = read_corpus_dir(corpus_dir) if corpus_dir else []
    view = corpus_view(corpus, traces, k=k, overrides=overrides) if corpus else None
    rows = [judge(t, matcher, view, k) for t in traces]
    verdicts = [{"query_id": r["query_id"], "verdict": r["verdict"], "evidence": r["evidence"], "line": r["line"]}
                for r in rows if "verdict" in r]
    sig_corpus = Corpus.of(corpus)
    signals = {}
    for t, r in zip(traces, rows):
        chunks = None
        if view is not None:
            from benchmarks.datasets.files import locate

            chunks = []
            for h, c in zip(r["docs"], t.contexts):
                if h["doc_id"] in view.docs:
                    at = locate(view.docs[h["doc_id"]].text, c["text"])
                    if at:
                        chunks.append(Chunk(c["id"], h["doc_id"], "", view.docs[h["doc_id"]].text[at[0]:at[1]], at[0], at[1]))
        scores = [c["score"] for c in t.contexts]
        signals[t.id] = query_signals(
            t.query, [h["doc_id"] for h in r["docs"]], scores if all(isinstance(s, (int, float)) for s in scores) else [],
            sig_corpus, k=k, context_chunks=chunks or None, context_texts=[c["text"] for c in t.contexts],
            bm25=view.companions["bm25"].get(t.id) if view else None, dense=view.companions["dense"].get(t.id) if view else None)
    return {"rows": rows, "verdicts": verdicts, "signals": signals, "skipped_spans": skipped,
            "docs": {d.id: d for d in corpus}, "threshold": threshold, "n_traces": len(traces)}
