"""``rbench-generate``: questions, with verbatim evidence, for a corpus that has none.

    rbench-generate --corpus DIR --out queries.jsonl [--per-label N] [--labels simple,exact_term,...]

For each failure-mode label a template picks fitting documents from the corpus (deterministically, from
``--seed``) and asks the OpenAI-compatible chat endpoint of the ``llm`` decomposer (same base URL, model and
key handling: the key is read from ``$OPENAI_API_KEY`` or ``--api-key-env`` and is never logged or cached)
for one question and the exact sentences that answer it:

* ``simple`` — one document, asked in other words;
* ``exact_term`` — a document with an identifier (a code, a number), asked by that identifier;
* ``chunk_boundary`` — a rule whose condition and consequence are adjacent sentences, both needed;
* ``multi_hop`` — two documents, the first naming the second, both needed;
* ``stale_version`` — the current version of a document that supersedes another, about what changed.

The reply must be a JSON object ``{"query": str, "evidence": [str, ...]}``. Every evidence string is
checked against the documents it was asked about (verbatim, whitespace-insensitive); a string found in
none of them is rejected and counted, and a question left with no evidence (or, for ``multi_hop``, without
evidence in both documents) is dropped. Responses are cached on disk, so a rerun sends nothing. The output
is the queries file ``dataset=files dataset.queries=`` reads: ``_id, text, relevant, evidence, label``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from chunkers.types import Document
from benchmarks.labels import LABELS  # the failure-mode vocabulary, defined once
from benchmarks.arguments import arg_type, integer, limit, number
from benchmarks.datasets import limits
from retrievers.query_features import identifiers
from retrievers.versions import is_stale
from benchmarks.datasets.files import locate
from benchmarks.errors import RbenchError
from benchmarks.paths import CONF_DIR
from benchmarks.diagnosis.traces import read_corpus_dir
from retrievers.infrastructure.errors import RetrieverError
from retrievers.llm import ChatClient
from benchmarks.paths import location, runnable

SYSTEM = ("You write evaluation questions for a retrieval system. You are given one or more documents, each "
          "with an id. Reply with a JSON object and nothing else: {\"query\": \"<the question>\", \"evidence\": "
          "[\"<exact sentence copied from a document>\", ...]}. Every evidence string must be copied character "
          "for character from the documents; do not paraphrase evidence.")
TEMPLATES = {
    "simple": "Write a question a colleague would ask that document {ids} answers, using different words from the "
              "document (no phrase of four or more words copied). Evidence: the one sentence that answers it.",
    "exact_term": "Write a short question that names this exact identifier from document {ids}: {term!r} (keep it "
                  "verbatim) and that the document answers. Evidence: the sentence with the answer.",
    "chunk_boundary": "Document {ids} contains a rule whose condition and consequence are in two adjacent "
                      "sentences. Write a question that needs both sentences. Evidence: both sentences, separately, "
                      "in document order.",
    "multi_hop": "Document {first} refers to document {second}. Write one question whose answer needs a fact from "
                 "each document. Evidence: one sentence from {first} and one from {second}.",
    "stale_version": "Document {ids} replaces an older version. Write a question about a value (a number, a limit, "
                     "a role) stated in {ids}. Evidence: the sentence from {ids} with the current value.",
}


@dataclass
class Outcome:
    queries: list[dict[str, Any]] = field(default_factory=list)
    spans_total: int = 0
    spans_rejected: int = 0
    replies_rejected: int = 0
    rejected: list[str] = field(default_factory=list)  # why, for the first few

    def reject(self, why: str) -> None:
        self.replies_rejected += 1
        if len(self.rejected) < 10:
            self.rejected.append(why)


def _clip(text: str, n: int = 6000) -> str:
    return text if len(text) <= n else text[:n] + "\n[...]"


def candidates(corpus: Sequence[Document], label: str, rng: random.Random) -> list[tuple[Document, ...]]:
    """Document tuples the template for ``label`` can be asked about, shuffled with ``rng``."""

    by_id = {d.id: d for d in corpus}
    current = [d for d in corpus if not is_stale(d.metadata)]
    if label == "stale_version":
        out = [(d,) for d in current if d.metadata.get("supersedes") in by_id]
    elif label == "exact_term":
        out = [(d,) for d in current if any(re.search(r"\d", t) for t in identifiers(d.text))]
    elif label == "multi_hop":
        out = []
        for a in current:
            low = a.text.lower()
            out += [(a, b) for b in current if b.id != a.id and len(b.title) >= 6 and b.title.lower() in low]
    elif label == "chunk_boundary":
        out = [(d,) for d in current if len(re.findall(r"[.!?]\s", d.text)) >= 3]
    else:
        out = [(d,) for d in current]
    rng.shuffle(out)
    return out


def prompt_for(label: str, docs: tuple[Document, ...], rng: random.Random) -> str:
    ids = docs[0].id
    term = ""
    if label == "exact_term":
        terms = [t for t in identifiers(docs[0].text) if re.search(r"\d", t)]
        term = rng.choice(terms) if terms else ""
    ask = TEMPLATES[label].format(ids=ids, first=docs[0].id, second=docs[-1].id, term=term)
    body = "\n\n".join(f"<document id={d.id!r} title={d.title!r}>\n{_clip(d.text)}\n</document>" for d in docs)
    return f"{ask}\n\n{body}"


def parse_reply(content: str) -> tuple[str, list[str]]:
    value = json.loads(content)
    if not isinstance(value, dict) or not isinstance(value.get("query"), str) or not value["query"].strip():
        raise ValueError("expected a JSON object with a non-empty string 'query'")
    ev = value.get("evidence")
    if not isinstance(ev, list) or not all(isinstance(x, str) for x in ev):
        raise ValueError("'evidence' must be a list of strings")
    return value["query"].strip(), [x for x in ev if x.strip()]


def generate(corpus: Sequence[Document], client: Any, *, per_label: int = 5, labels: Sequence[str] = LABELS,
             seed: int = 0, progress: Any = None) -> Outcome:
    """Ask for ``per_label`` validated questions per label (fewer where the corpus has too few fitting documents)."""

    rng = random.Random(seed)
    out = Outcome()
    seen: set[str] = set()
    for label in labels:
        made = 0
        for docs in candidates(corpus, label, rng):
            if made >= per_label:
                break
            user = prompt_for(label, docs, rng)
            content = client.complete(SYSTEM, user)
            if progress is not None:
                progress.update(1)
            try:
                text, evidence = parse_reply(content)
            except ValueError as err:
                out.reject(f"{label} on {docs[0].id}: unusable reply ({err})")
                continue
            spans: list[tuple[str, str]] = []
            for ev in evidence:
                out.spans_total += 1
                where = next((d.id for d in docs if locate(d.text, ev) is not None), None)
                if where is None:
                    out.spans_rejected += 1
                else:
                    spans.append((where, ev))
            found_in = {d for d, _ in spans}
            if not spans or (label == "multi_hop" and len(found_in) < 2) or text.lower() in seen:
                out.reject(f"{label} on {', '.join(d.id for d in docs)}: "
                           + ("duplicate question" if text.lower() in seen else "no verbatim evidence in every document asked about"))
                continue
            seen.add(text.lower())
            made += 1
            out.queries.append({"_id": f"gen-{label}-{made:03d}", "text": text,
                                "relevant": sorted(found_in, key=[d.id for d in docs].index),
                                "evidence": [ev for _, ev in spans], "label": label})
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rbench-generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, metavar="DIR", help="a documents folder (as dataset=files) or a BEIR folder")
    p.add_argument("--out", required=True, metavar="FILE", help="the queries .jsonl to write")
    p.add_argument("--per-label", type=arg_type(int, integer(1)), default=5, metavar="N")
    p.add_argument("--labels", default=",".join(LABELS), help=f"comma-separated subset of {','.join(LABELS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=limit, action="append", default=[], metavar="NAME=VALUE",
                   help="a bounded-reading limit, as the config's limits.* (e.g. --limit file_mb=512); repeatable")
    p.add_argument("--base-url", default=None, help="default: the llm decomposer's (${OPENAI_BASE_URL} or api.openai.com)")
    p.add_argument("--model", default=None, help="default: the llm decomposer's model")
    p.add_argument("--api-key-env", default=None, help="environment variable holding the key (default: the decomposer's)")
    p.add_argument("--cache-dir", default=None, help="response cache (default: <cache.dir>/llm)")
    p.add_argument("--timeout-s", type=arg_type(float, number(0, open_lo=True)), default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limits.configure(dict(args.limit) or None)
    from omegaconf import OmegaConf

    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    unknown = sorted(set(labels) - set(LABELS))
    if unknown or not labels:
        print(f"rbench-generate: error: --labels: unknown {unknown or 'none given'}; choose from {','.join(LABELS)}", file=sys.stderr)
        return 2
    if args.per_label < 1:
        print("rbench-generate: error: --per-label must be >= 1", file=sys.stderr)
        return 2
    try:  # the corpus first: a missing or empty folder is the first thing wrong, whatever the endpoint
        corpus = read_corpus_dir(args.corpus)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench-generate: error: {err}", file=sys.stderr)
        return 2
    dec = OmegaConf.load(CONF_DIR / "decomposer" / "llm.yaml")
    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    key_env = args.api_key_env or str(dec.api_key_env)
    if not (args.base_url or os.environ.get("OPENAI_BASE_URL")) and not os.environ.get(key_env):
        print(f"rbench-generate: error: no LLM endpoint is configured: ${key_env} is not set and neither --base-url nor "
              "$OPENAI_BASE_URL names another endpoint. Set the key (OpenAI), or point --base-url at an "
              "OpenAI-compatible server (a local one needs no key)", file=sys.stderr)
        return 2

    cache_dir = args.cache_dir or str(Path(location("cache.dir")) / "llm")
    from tqdm.auto import tqdm

    try:
        client = ChatClient(base_url=base_url, model=args.model or str(dec.model),
                            api_key_env=key_env, temperature=float(dec.temperature),
                            timeout_s=args.timeout_s or float(dec.timeout_s), retries=int(dec.retries), cache_dir=cache_dir,
                            what="rbench-generate", hint="--model, --base-url")
        with tqdm(desc="generate", unit=" requests", disable=None) as bar:
            outcome = generate(corpus, client, per_label=args.per_label, labels=labels, seed=args.seed, progress=bar)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench-generate: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for q in outcome.queries:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    from collections import Counter

    per = Counter(q["label"] for q in outcome.queries)
    print(f"rbench-generate: wrote {len(outcome.queries)} queries to {out} ("
          + ", ".join(f"{lab} {per.get(lab, 0)}" for lab in labels) + f"); evidence spans rejected (not verbatim in the "
          f"documents): {outcome.spans_rejected} of {outcome.spans_total}; replies rejected: {outcome.replies_rejected}; "
          f"{client.requests} requests, {client.cache_hits} from the cache")
    for why in outcome.rejected[:5]:
        print(f"  rejected: {why}")
    short = [lab for lab in labels if per.get(lab, 0) < args.per_label]
    if short:
        print(f"  fewer than {args.per_label} for {', '.join(short)}: the corpus has too few fitting documents, or replies were rejected")
    print(f"next: {runnable('rbench')} dataset=files dataset.path={args.corpus} dataset.queries={out}")
    return 0
