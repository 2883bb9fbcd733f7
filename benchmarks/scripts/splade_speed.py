"""SPLADE encoding speed: passages/s of the configured SPLADE model at several ``max_seq_length`` values.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.splade_speed [--n 256] [--threads 2]

Encodes the same ``--n`` scifact passages (a seeded sample, title + text, as retrieval indexes them) after one
warm-up batch, once per length, through sentence-transformers' ``SparseEncoder`` on torch fp32 (the only backend
that applies: the project's ONNX/OpenVINO exporters export mean-pooled bi-encoders, and sentence-transformers'
own ONNX/OpenVINO paths for sparse models need optimum, which does not install beside sentence-transformers 6).
Also reports the mean number of non-zero terms per passage. Writes ``results/splade_speed.{md,json}`` with the
machine described.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--lengths", default="128,256,512")
    p.add_argument("--model", default="splade-tiny-msmarco")
    p.add_argument("--out", default="results/splade_speed")
    args = p.parse_args(argv)
    from benchmarks.datasets.beir import read_corpus
    from benchmarks.scripts.machine import as_markdown, describe, write_keeping_reading
    from retrievers.splade import SpladeRetriever

    data = Path(os.environ.get("RBENCH_DATA_DIR", "../shared/data")) / "beir" / "scifact"
    docs = read_corpus(data / "corpus.jsonl")
    texts = [f"{d.title}\n{d.text}" for d in random.Random(0).sample(docs, min(args.n, len(docs)))]
    rows = []
    for length in [int(x) for x in args.lengths.split(",")]:
        r = SpladeRetriever(model=args.model, device="cpu", max_seq_length=length, threads=args.threads)
        r.encode(texts[:32], kind="doc")  # warm-up: loads the model
        t0 = time.perf_counter()
        vectors = r.encode(texts, kind="doc")
        seconds = time.perf_counter() - t0
        rows.append({"max_seq_length": length, "passages": len(texts), "seconds": round(seconds, 2),
                     "passages_per_s": round(len(texts) / seconds, 1),
                     "terms_per_passage": round(vectors.nnz / len(texts), 1)})
        print(f"max_seq_length {length}: {rows[-1]['passages_per_s']} passages/s, "
              f"{rows[-1]['terms_per_passage']} terms per passage", flush=True)
    machine = describe()
    Path(args.out + ".json").write_text(json.dumps({"machine": machine, "model": args.model, "threads": args.threads,
                                                     "rows": rows}, indent=2) + "\n", encoding="utf-8")
    lines = [f"# SPLADE encoding speed ({args.model}, torch fp32, {args.threads} threads)", "",
             f"    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.splade_speed --threads {args.threads}", "",
             as_markdown(machine), "",
             "| max_seq_length | passages | seconds | passages/s | terms per passage |", "|---|---|---|---|---|"]
    lines += [f"| {r['max_seq_length']} | {r['passages']} | {r['seconds']} | {r['passages_per_s']} | {r['terms_per_passage']} |"
              for r in rows]
    write_keeping_reading(args.out + ".md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
