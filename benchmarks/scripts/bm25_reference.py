"""BM25 reproduction check on BEIR scifact (the foundation's acceptance numbers).

1. The default (bm25s, Lucene BM25, k1=0.9, b=0.4, English stopwords + Snowball) must give nDCG@10 within
   0.01 of Pyserini's flat BM25 (0.679).
2. With the same variant (robertson), bm25s and rank_bm25 must give the same nDCG@10 within 0.001.
3. trec_eval (pytrec_eval) on the written TREC run file must reproduce our nDCG@10.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.bm25_reference [--out results/bm25_reference]

Writes ``<out>.json`` and ``<out>.md``; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.datasets.beir import BeirLoader
from benchmarks.scripts.machine import as_markdown, describe
from benchmarks.evaluation.metrics import evaluate
from benchmarks.run.retrieval import retrieve
from benchmarks.evaluation.trec import write_qrels, write_run
from chunkers.base import NoChunker
from retrievers.bm25 import BM25Retriever

PYSERINI_FLAT = 0.679


def trec_eval_ndcg10(run, qrels) -> float:
    import pytrec_eval

    with tempfile.TemporaryDirectory() as tmp:
        write_run(run, Path(tmp) / "run.trec")
        write_qrels(qrels, Path(tmp) / "qrels.trec")
        with open(Path(tmp) / "run.trec") as fh:
            file_run = pytrec_eval.parse_run(fh)
        with open(Path(tmp) / "qrels.trec") as fh:
            file_qrels = pytrec_eval.parse_qrel(fh)
    per_q = pytrec_eval.RelevanceEvaluator(file_qrels, {"ndcg_cut.10"}).evaluate(file_run)
    # trec_eval averages over queries in the qrels; queries with no retrieved docs count as 0
    return sum(per_q.get(q, {}).get("ndcg_cut_10", 0.0) for q in file_qrels) / len(file_qrels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("RBENCH_DATA_DIR", "../shared/data"))
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--out", default="results/bm25_reference")
    args = parser.parse_args(argv)
    ds = BeirLoader(name=args.dataset, data_dir=args.data_dir).load()
    configs = {
        "bm25s lucene (default)": dict(backend="bm25s", variant="lucene"),
        "bm25s robertson": dict(backend="bm25s", variant="robertson"),
        "rank_bm25 robertson": dict(backend="rank_bm25", variant="robertson"),
    }
    rows = {}
    runs = {}
    for name, kw in configs.items():
        retriever = BM25Retriever(k1=0.9, b=0.4, **kw)
        t0 = time.perf_counter()
        res = retrieve(ds, NoChunker(), retriever, top_k=100)
        wall = time.perf_counter() - t0
        ev = evaluate(ds.qrels, res.run, [10, 100])
        rows[name] = {"ndcg_at_10": ev.mean["ndcg_at_10"], "recall_at_100": ev.mean["recall_at_100"],
                      "index_s": res.timings["time_index_s"], "search_s": res.timings["time_search_s"],
                      "queries_per_s": res.timings["queries_per_s"], "wall_s": wall}
        runs[name] = res.run
        print(f"{name:24} nDCG@10={rows[name]['ndcg_at_10']:.4f}  R@100={rows[name]['recall_at_100']:.4f}  "
              f"{rows[name]['queries_per_s']:.0f} q/s", flush=True)
    default = rows["bm25s lucene (default)"]["ndcg_at_10"]
    trec = trec_eval_ndcg10(runs["bm25s lucene (default)"], ds.qrels)
    diff_backends = abs(rows["bm25s robertson"]["ndcg_at_10"] - rows["rank_bm25 robertson"]["ndcg_at_10"])
    checks = {
        f"default within 0.01 of Pyserini flat {PYSERINI_FLAT}": abs(default - PYSERINI_FLAT) <= 0.01,
        "bm25s and rank_bm25 (robertson) within 0.001": diff_backends <= 0.001,
        "trec_eval on the TREC file equals our nDCG@10 (1e-9)": abs(trec - default) <= 1e-9,
    }
    out = {"dataset": args.dataset, "rows": rows, "trec_eval_ndcg_at_10": trec, "checks": checks, "machine": describe()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    lines = [f"# BM25 reference check on BEIR {args.dataset}", "",
             "Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.bm25_reference`", "",
             "| configuration | nDCG@10 | Recall@100 | index + search s | queries/s (index build included) |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['ndcg_at_10']:.4f} | {r['recall_at_100']:.4f} | {r['wall_s']:.2f} | "
                     f"{r['queries_per_s']:.0f} |")
    lines += ["", "The index is built on the first search that misses the run cache (here: no cache), so the "
              "search time includes tokenizing and indexing the corpus; results/bm25_speed.md times search alone."]
    lines += ["", f"Pyserini BM25 flat (published): {PYSERINI_FLAT}; trec_eval on our TREC file: {trec:.6f}.", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()]
    lines += ["", as_markdown(out["machine"]), ""]
    Path(args.out + ".md").write_text("\n".join(lines))
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
