"""The numpy metrics equal ``ranx.evaluate`` on real runs: BM25 (the defaults) on every BEIR folder under
``$RBENCH_DATA_DIR/beir``, every metric at every default k, per query. A CI gate (exit 1 on any difference
above the tolerance).

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.metrics_equality [--tolerance 1e-9]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("RBENCH_DATA_DIR", "../shared/data"))
    parser.add_argument("--cache-dir", default=os.environ.get("RBENCH_CACHE_DIR", "results/cache"))
    parser.add_argument("--tolerance", type=float, default=1e-9)
    args = parser.parse_args(argv)
    from benchmarks.datasets.beir import BeirLoader
    from benchmarks.evaluation.metrics import evaluate
    from benchmarks.run.retrieval import retrieve
    from chunkers import NoChunker
    from retrievers.bm25 import BM25Retriever

    ks = [1, 2, 5, 10, 20, 100]
    folders = sorted(p.parent for p in (Path(args.data_dir) / "beir").glob("*/corpus.jsonl"))
    if not folders:
        print(f"metrics_equality: no BEIR folders under {args.data_dir}/beir", file=sys.stderr)
        return 2
    worst_all, failed = 0.0, []
    for folder in folders:
        ds = BeirLoader(path=str(folder)).load()
        res = retrieve(ds, NoChunker(), BM25Retriever(cache_dir=args.cache_dir), top_k=100)
        t0 = time.perf_counter()
        ours = evaluate(ds.qrels, res.run, ks)
        t1 = time.perf_counter()
        ref = evaluate(ds.qrels, res.run, ks, engine="ranx")
        t2 = time.perf_counter()
        worst = max(abs(ours.per_query[q][m] - v) for q, row in ref.per_query.items() for m, v in row.items())
        worst_all = max(worst_all, worst)
        ties = sum(1 for hits in res.run.values() if len(set(hits.values())) < len(hits))
        print(f"{folder.name}: {ours.n_scored} queries ({ties} with tied scores) x {len(ref.mean)} metrics; largest "
              f"difference {worst:.1e}; numpy {t1 - t0:.2f} s, ranx {t2 - t1:.2f} s (JIT included on the first)")
        if worst > args.tolerance:
            failed.append(folder.name)
    print(f"metrics_equality: {'FAILED on ' + ', '.join(failed) if failed else 'ok'} (largest difference "
          f"{worst_all:.1e}, tolerance {args.tolerance:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
