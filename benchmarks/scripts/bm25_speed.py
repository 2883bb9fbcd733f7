"""BM25 speed: the fast backend (bm25s) vs the reference (rank_bm25) on scifact, same variant, one run.

Both backends use BM25 "robertson" (k1=0.9, b=0.4, the same tokenizer) so their scores agree; the check
is queries/s of bm25s >= 50x rank_bm25's at equal nDCG@10 (within 0.001). Searching excludes the cache
(``cache_mode=off``) and is single-threaded for both; indexing time is reported beside it.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.bm25_speed [--out results/bm25_speed]

Writes ``<out>.json`` and ``<out>.md``; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from benchmarks.datasets.beir import BeirLoader
from benchmarks.scripts.machine import as_markdown, describe
from benchmarks.evaluation.metrics import evaluate
from chunkers.base import NoChunker
from retrievers.base import aggregate_to_docs
from retrievers.bm25 import BM25Retriever


def measure(backend: str, chunks, queries, qrels, repeats: int, bm25s_backend: str = "numpy") -> dict:
    r = BM25Retriever(backend=backend, variant="robertson", cache_mode="off", bm25s_backend=bm25s_backend)
    r.index(chunks)
    t0 = time.perf_counter()
    r._build()
    index_s = time.perf_counter() - t0
    times, run = [], {}
    t0 = time.perf_counter()
    r._search(queries[:2], 100)  # warm-up (numba compiles here), reported separately
    warmup_s = time.perf_counter() - t0
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = r._search(queries, 100)
        times.append(time.perf_counter() - t0)
    best = min(times)
    c2d = {c.id: c.doc_id for c in chunks}
    ndcg = evaluate(qrels, aggregate_to_docs(run, c2d, top_k=100), [10]).mean["ndcg_at_10"]
    name = backend + (f" ({bm25s_backend})" if backend == "bm25s" else "")
    return {"backend": name, "warmup_s": warmup_s, "index_s": index_s, "search_s": best, "queries_per_s": len(queries) / best,
            "repeats": repeats, "ndcg_at_10": ndcg}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("RBENCH_DATA_DIR", "../shared/data"))
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--repeats", type=int, default=3, help="search passes per backend (the fastest counts)")
    parser.add_argument("--out", default="results/bm25_speed")
    args = parser.parse_args(argv)
    ds = BeirLoader(name=args.dataset, data_dir=args.data_dir).load()
    chunks = [c for d in ds.corpus for c in NoChunker().chunk(d)]
    numpy_ = measure("bm25s", chunks, ds.queries, ds.qrels, args.repeats)
    fast = measure("bm25s", chunks, ds.queries, ds.qrels, args.repeats, bm25s_backend="numba")
    ref = measure("rank_bm25", chunks, ds.queries, ds.qrels, max(1, args.repeats - 2))
    ratio = fast["queries_per_s"] / ref["queries_per_s"]
    checks = {"speed-up >= 50x": ratio >= 50, "nDCG@10 equal within 0.001": abs(fast["ndcg_at_10"] - ref["ndcg_at_10"]) <= 0.001}
    result = {"dataset": args.dataset, "documents": len(chunks), "queries": len(ds.queries), "bm25s_numba": fast,
              "bm25s_numpy": numpy_, "rank_bm25": ref, "speedup": ratio,
              "speedup_numpy": numpy_["queries_per_s"] / ref["queries_per_s"], "checks": checks, "machine": describe()}
    lines = [f"# BM25 speed on {args.dataset}: bm25s vs rank_bm25 (variant robertson, k1=0.9, b=0.4)", "",
             f"{len(chunks)} documents, {len(ds.queries)} queries, top 100, single-threaded, no cache; "
             "search time is the fastest of the passes.", "",
             "| backend | index s | warm-up s | search s | queries/s | nDCG@10 |", "|---|---|---|---|---|---|"]
    for m in (fast, numpy_, ref):
        lines.append(f"| {m['backend']} | {m['index_s']:.2f} | {m['warmup_s']:.2f} | {m['search_s']:.3f} | "
                     f"{m['queries_per_s']:.0f} | {m['ndcg_at_10']:.4f} |")
    lines += ["", f"Speed-up of the fast backend (`retriever.bm25s_backend=numba`): **{ratio:.0f}x** queries/s "
              f"(bm25s with its default numpy backend: {result['speedup_numpy']:.0f}x). The numba backend compiles "
              "once per process (the warm-up column), so it is opt-in: worth it for large query sets.", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()]
    lines += ["", "Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.bm25_speed`", "", as_markdown(describe())]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".md").write_text(text, encoding="utf-8")
    Path(args.out + ".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
