"""Scale benchmark: a generated corpus of short passages (default 1M) through BM25 and dense retrieval.

Passages are 20-40 words drawn (Zipf-distributed, seed 0) from the vocabulary of a real corpus (scifact
under ``$RBENCH_DATA_DIR`` when present, else synthetic words); each query is 4 words of one passage, so
its source passage is the known answer. Each stage runs in its own process so its peak memory (max RSS)
is its own:

* ``bm25``: tokenize + index (bm25s), save the index to the cache; queries/s (numpy backend, one thread);
* ``bm25_mmap``: a fresh process loads the saved index memory-mapped and searches (load time, peak memory);
* ``dense``: encode with the static model (model2vec, 64-d) in blocks into a memory-mapped ``.npy``; exact
  search (faiss flat) queries/s; IVF and HNSW build time, queries/s and recall@100 against exact search.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.scale --n 1000000 --out results/scale

Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chunkers.types import Chunk, Query


def vocabulary(data_dir: str | None, size: int = 30000) -> list[str]:
    path = Path(data_dir or "") / "beir" / "scifact" / "corpus.jsonl"
    if path.is_file():
        from collections import Counter

        counts: Counter = Counter()
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                counts.update(w for w in re.findall(r"[a-z]{3,}", json.loads(line)["text"].lower()))
        return [w for w, _ in counts.most_common(size)]
    return [f"w{i}" for i in range(size)]


def corpus(n: int, vocab: list[str], seed: int = 0):
    """Chunks of the generated corpus (generated in blocks; the texts are the only copy in memory)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / ranks ** 1.05
    p /= p.sum()
    words = np.array(vocab, dtype=object)
    chunks = []
    block = 100_000
    for start in range(0, n, block):
        m = min(block, n - start)
        lengths = rng.integers(20, 41, size=m)
        flat = words[rng.choice(len(vocab), size=int(lengths.sum()), p=p)]
        pos = 0
        for i, length in enumerate(lengths):
            text = " ".join(flat[pos:pos + length])
            pos += length
            did = f"p{start + i}"
            chunks.append(Chunk(f"{did}#0", did, "", text, 0, len(text), ""))
    return chunks


def queries(chunks, n_queries: int, seed: int = 1) -> list[Query]:
    rng = np.random.default_rng(seed)
    out = []
    for j, i in enumerate(rng.choice(len(chunks), size=n_queries, replace=False)):
        words = chunks[i].text.split()
        pick = rng.choice(len(words), size=min(4, len(words)), replace=False)
        out.append(Query(f"q{j}", " ".join(words[k] for k in sorted(pick)), {"source": chunks[i].id}))
    return out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # Linux: KiB


def mrr(run, qs) -> float:
    total = 0.0
    for q in qs:
        ranked = sorted(run.get(q.id, {}).items(), key=lambda kv: -kv[1])
        ids = [c for c, _ in ranked]
        src = q.metadata["source"]
        total += 1.0 / (ids.index(src) + 1) if src in ids else 0.0
    return total / len(qs)


def stage_bm25(args, chunks, qs, mmap: bool) -> dict:
    from retrievers.bm25 import BM25Retriever

    r = BM25Retriever(cache_dir=args.cache, bm25s_backend=args.bm25s_backend)
    r.index(chunks)
    t0 = time.perf_counter()
    r._build()
    build_s = time.perf_counter() - t0
    r._search(qs[:2], 100)  # warm-up (numba compiles here)
    t0 = time.perf_counter()
    run = r._search(qs, 100)
    search_s = time.perf_counter() - t0
    out = {"index_or_load_s": build_s, "built": r.index_builds == 1, "queries_per_s": len(qs) / search_s,
           "mrr_at_100": mrr(run, qs)}
    if mmap:
        out["memory_mapped"] = isinstance(r._model.scores["data"], np.memmap)
    index_dir = next((p for p in (Path(args.cache) / "bm25_index").iterdir() if not p.name.startswith(".")), None)
    if index_dir is not None:
        out["index_mib_on_disk"] = sum(f.stat().st_size for f in index_dir.iterdir()) / 2 ** 20
    return out


def stage_dense(args, chunks, qs) -> dict:
    from retrievers.dense import DenseRetriever, Index
    from retrievers.encoders import StaticModelEncoder

    enc = StaticModelEncoder()
    out: dict = {}
    flat = DenseRetriever(encoder=enc, cache_dir=args.cache)
    t0 = time.perf_counter()
    flat.index(chunks)
    out["encode_s"] = time.perf_counter() - t0
    out["embeddings_memory_mapped"] = isinstance(flat._emb, np.memmap)
    out["dim"] = int(flat._emb.shape[1])
    import faiss  # noqa: F401

    exact: dict = {}
    settings = [("flat", {})]
    settings += [("ivf", {"ivf_nprobe": p}) for p in args.nprobe]
    if not args.skip_hnsw:
        settings += [("hnsw", {"hnsw_m": args.hnsw_m, "hnsw_ef_construction": args.hnsw_ef_construction,
                               "hnsw_ef_search": ef}) for ef in args.hnsw_ef_search]
    out["indexes"] = []
    built: dict = {}
    for kind, kw in settings:
        r = flat if kind == "flat" else DenseRetriever(encoder=enc, cache_dir=args.cache, index=Index(kind, **kw))
        if r is not flat:
            r.index(chunks)  # embeddings from the cache
        t0 = time.perf_counter()
        if kind in built:  # same index, other search-time setting: reuse the built structure
            r._faiss = built[kind]
            if kind == "ivf":
                r._faiss.nprobe = kw["ivf_nprobe"]
            else:
                r._faiss.hnsw.efSearch = kw["hnsw_ef_search"]
            build_s = None
        else:
            r.faiss_index()
            build_s = time.perf_counter() - t0
            built[kind] = r._faiss
        t0 = time.perf_counter()
        run = r.search(qs, top_k=100)
        search_s = time.perf_counter() - t0
        row = {"index": kind, "build_s": build_s, "queries_per_s": len(qs) / search_s, "mrr_at_100": mrr(run, qs), **kw}
        if kind == "flat":
            exact = run
        else:
            row["recall_at_100_vs_exact"] = float(np.mean([len(set(run[q.id]) & set(exact[q.id])) / max(1, len(exact[q.id]))
                                                           for q in qs]))
            if kind == "ivf":
                row["nlist"] = r._nlist()
        out["indexes"].append(row)
    return out


def run_stage(args) -> dict:
    from benchmarks.scripts.machine import describe  # noqa: F401  (import cost outside the timings)

    t0 = time.perf_counter()
    chunks = corpus(args.n, vocabulary(args.data_dir))
    gen_s = time.perf_counter() - t0
    qs = queries(chunks, args.queries)
    if args.stage == "bm25":
        res = stage_bm25(args, chunks, qs, mmap=False)
    elif args.stage == "bm25_mmap":
        res = stage_bm25(args, chunks, qs, mmap=True)
    else:
        res = stage_dense(args, chunks, qs)
    return {"stage": args.stage, "generate_s": gen_s, **res, "peak_rss_gib": peak_rss_gib()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--data-dir", default=os.environ.get("RBENCH_DATA_DIR", "../shared/data"))
    parser.add_argument("--nprobe", type=lambda t: [int(x) for x in t.split(",")], default=[16, 64, 256])
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--hnsw-ef-construction", type=int, default=80)
    parser.add_argument("--hnsw-ef-search", type=lambda t: [int(x) for x in t.split(",")], default=[128, 512])
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--bm25-only", action="store_true", help="the BM25 stages only (10M passages: #23)")
    parser.add_argument("--bm25s-backend", default="numba", choices=["numpy", "numba"])
    parser.add_argument("--out", default="results/scale")
    parser.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:  # a child process: one stage, JSON on stdout
        print("RESULT " + json.dumps(run_stage(args)), flush=True)
        return 0

    results = {}
    with tempfile.TemporaryDirectory(prefix="rbench-scale-") as cache:
        for stage in ("bm25", "bm25_mmap") + (() if args.bm25_only else ("dense",)):
            cmd = [sys.executable, "-m", "benchmarks.scripts.scale", "--stage", stage, "--cache", cache,
                   *(a for a in (argv if argv is not None else sys.argv[1:]))]
            print(f"scale: stage {stage} (n={args.n:,})...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            results[stage] = json.loads(line[len("RESULT "):])
            results[stage]["wall_s"] = time.perf_counter() - t0
    b, m, d = results["bm25"], results["bm25_mmap"], results.get("dense")
    lines = [f"# Scale: {args.n:,} generated passages (20-40 words), {args.queries} queries", "",
             "Each stage is its own process; peak memory is that process's max RSS (corpus generation included).", "",
             f"## BM25 (bm25s, Lucene BM25, {args.bm25s_backend} backend, one thread; queries/s after warm-up)", "",
             "| step | time | queries/s | peak RSS | notes |", "|---|---|---|---|---|",
             f"| generate + tokenize + index + save | {b['generate_s']:.0f} s + {b['index_or_load_s']:.0f} s | "
             f"{b['queries_per_s']:.0f} | {b['peak_rss_gib']:.2f} GiB | index {b.get('index_mib_on_disk', 0):.0f} MiB on disk; MRR@100 {b['mrr_at_100']:.3f} |",
             f"| fresh process: load index memory-mapped | {m['index_or_load_s']:.1f} s | {m['queries_per_s']:.0f} | "
             f"{m['peak_rss_gib']:.2f} GiB | memory-mapped: {m.get('memory_mapped')} |", ""]
    if d is None:
        return _finish(args, lines, results, argv)
    lines += [f"## Dense (static model2vec {d['dim']}-d vectors, encoded in blocks into a memory-mapped .npy)", "",
             f"Encoding {args.n:,} passages: {d['encode_s']:.0f} s; peak RSS of the dense process {d['peak_rss_gib']:.2f} GiB "
             f"(embeddings memory-mapped: {d['embeddings_memory_mapped']}).", "",
             "| index | build s | queries/s | speed-up vs flat | recall@100 vs exact | settings |", "|---|---|---|---|---|---|"]
    flat_qps = d["indexes"][0]["queries_per_s"]
    for r in d["indexes"]:
        kind = r["index"]
        settings = {"flat": "exact inner product", "ivf": f"nlist {r.get('nlist')}, nprobe {r.get('ivf_nprobe')}",
                    "hnsw": f"M {r.get('hnsw_m')}, efConstruction {r.get('hnsw_ef_construction')}, efSearch {r.get('hnsw_ef_search')}"}[kind]
        build = "(same index)" if r["build_s"] is None else f"{r['build_s']:.1f}"
        lines.append(f"| {kind} | {build} | {r['queries_per_s']:.0f} | {r['queries_per_s'] / flat_qps:.1f}x | "
                     f"{r.get('recall_at_100_vs_exact', 1.0):.3f} | {settings} |")
    return _finish(args, lines, results, argv)


def _finish(args, lines: list[str], results: dict, argv: list[str] | None = None) -> int:  # noqa: ANN001
    from benchmarks.scripts.machine import as_markdown, describe

    given = " ".join(argv if argv is not None else sys.argv[1:])
    lines += ["", f"Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.scale {given}`", "", as_markdown(describe())]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text, encoding="utf-8")
    Path(args.out + ".json").write_text(json.dumps({"n": args.n, "queries": args.queries, **results, "machine": describe()},
                                                   indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
