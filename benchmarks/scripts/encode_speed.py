"""Dense encoding speed per backend and precision, and the quality of the fastest CPU setting.

    RBENCH_DATA_DIR=../shared/data python -m benchmarks.scripts.encode_speed [--n 384] [--threads 2]

Encodes the same ``--n`` scifact passages (a seeded sample, title + text, as dense retrieval indexes them) with
all-MiniLM-L6-v2 through every available setting — torch fp32 / bf16, ONNX Runtime fp32 / int8 (dynamic),
OpenVINO fp32 / bf16 (where the CPU reports BF16) / int8 (NNCF, calibrated on a seeded sample of the corpus)
— after one warm-up batch (the export, made once and cached,
is timed separately). Then runs scifact end to end (nDCG@10, exact search) with torch fp32 and with the
fastest setting. Writes ``results/encode_speed.{md,json}`` with the machine (CPU model and flags).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = [("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "bf16"),
            ("openvino", "int8")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=384)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="results/encode_speed")
    p.add_argument("--skip-ndcg", action="store_true")
    p.add_argument("--dataset", default="scifact", help="a BEIR-format folder under $RBENCH_DATA_DIR/beir")
    args = p.parse_args(argv)
    from benchmarks.datasets.beir import read_corpus
    from benchmarks.scripts.machine import describe, write_keeping_reading
    from retrievers.encoders import SentenceTransformerEncoder
    from retrievers.infrastructure.errors import RetrieverError

    from retrievers.backends import AUTO_TOLERANCE, auto_setting, cpu_flags

    data = Path(os.environ.get("RBENCH_DATA_DIR", "../shared/data")) / "beir" / args.dataset
    corpus = read_corpus(data / "corpus.jsonl")
    rng = random.Random(0)
    sample = rng.sample(corpus, min(args.n, len(corpus)))
    texts = [f"{d.title}\n{d.text}" if d.title else d.text for d in sample]
    export_dir = Path(tempfile.gettempdir()) / "rbench-encode-speed-exports"
    rows = []
    for backend, precision in SETTINGS:
        try:
            enc = SentenceTransformerEncoder(device="cpu", backend=backend, precision=precision,
                                             threads=args.threads, batch_size=args.batch_size, export_dir=str(export_dir))
            # OpenVINO int8 is calibrated on the corpus, as DenseRetriever.index does (other settings: no-op)
            enc.calibrate([f"{d.title}\n{d.text}" if d.title else d.text for d in corpus])
            t0 = time.perf_counter()
            enc.encode(texts[: args.batch_size], kind="doc")  # warm-up (and the export, the first time)
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            vecs = enc.encode(texts, kind="doc")
            secs = time.perf_counter() - t0
            if (backend, precision) == ("torch", "fp32"):
                reference = vecs
            cos = (vecs * reference).sum(1) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(reference, axis=1))
            rows.append({"backend": backend, "precision": precision, "passages_per_s": len(texts) / secs,
                         "seconds": secs, "warmup_s": warm, "mean_cosine": float(cos.mean()),
                         "min_cosine": float(cos.min())})
            print(f"{backend:9} {precision:5} {len(texts) / secs:7.1f} passages/s", flush=True)
        except RetrieverError as err:
            rows.append({"backend": backend, "precision": precision, "skipped": str(err)})
            print(f"{backend:9} {precision:5} skipped: {err}", flush=True)
    base = next(r["passages_per_s"] for r in rows if (r["backend"], r["precision"]) == ("torch", "fp32"))
    for r in rows:
        if "passages_per_s" in r:
            r["speedup"] = r["passages_per_s"] / base
    timed = [r for r in rows if "passages_per_s" in r]
    best = max(timed, key=lambda r: r["passages_per_s"])
    chosen = auto_setting("auto", cpu_flags())
    quality = {}
    if not args.skip_ndcg:
        from benchmarks.api import run

        for backend, precision in {("torch", "fp32"), (best["backend"], best["precision"]), chosen[:2]}:
            with tempfile.TemporaryDirectory() as tmp:
                out = run(["dataset=beir", f"dataset.name={args.dataset}", "retriever=dense", "retriever.encoder.device=cpu",
                           f"retriever.encoder.backend={backend}", f"retriever.encoder.precision={precision}",
                           f"retriever.encoder.threads={args.threads}", f"tracking.uri=sqlite:///{tmp}/m.db",
                           f"tracking.artifact_root={tmp}/art", "tracking.visuals=false",
                           f"cache.dir={os.environ.get('RBENCH_CACHE_DIR', 'results/cache')}"])
            quality[f"{backend}/{precision}"] = {"ndcg_at_10": out["metrics"]["ndcg_at_10"],
                                                 "time_index_s": out["metrics"].get("time_index_s")}
            print(f"{args.dataset} nDCG@10 {backend}/{precision}: {out['metrics']['ndcg_at_10']:.4f}", flush=True)
    machine = describe()
    result = {"machine": machine, "n": len(texts), "threads": args.threads, "batch_size": args.batch_size,
              "rows": rows, "best": best, "quality": quality, "dataset": args.dataset, "tolerance": AUTO_TOLERANCE,
              "auto": {"backend": chosen[0], "precision": chosen[1], "why": chosen[2]}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    lines = ["# Dense encoding speed (all-MiniLM-L6-v2)", "",
             f"Machine: {machine.get('cpu', '?')}; {machine.get('cores', '?')} cores; CPU flags of note: "
             f"{', '.join(machine.get('flags_of_note', [])) or 'none of avx512/amx/vnni/bf16'}.",
             f"{len(texts)} {args.dataset} passages (seeded sample, title + text), batch {args.batch_size}, {args.threads} threads, "
             "after a warm-up batch; cosine: each passage vector against torch fp32's (the model's own).", "",
             "| backend | precision | passages/s | vs torch fp32 | mean cosine | min cosine | first batch (incl. export) s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "passages_per_s" in r:
            lines.append(f"| {r['backend']} | {r['precision']} | {r['passages_per_s']:.1f} | {r['speedup']:.2f}x | "
                         f"{r['mean_cosine']:.5f} | {r['min_cosine']:.5f} | {r['warmup_s']:.1f} |")
        else:
            lines.append(f"| {r['backend']} | {r['precision']} | — | — | — | — | skipped: {r['skipped'][:90]} |")
    if quality:
        lines += ["", f"| setting | {args.dataset} nDCG@10 | index time s (encode + build) |", "|---|---|---|"]
        lines += [f"| {k} | {v['ndcg_at_10']:.4f} | {v['time_index_s']:.0f} |" for k, v in sorted(quality.items())]
    lines += ["", f"`precision=auto` (with `backend=auto`) on this CPU: **{chosen[0]} {chosen[1]}** — {chosen[2]}. "
              f"Tolerance it must meet (`retrievers/backends.py`, AUTO_TOLERANCE): mean cosine >= "
              f"{AUTO_TOLERANCE['mean_cosine']} and |Δ nDCG@10| <= {AUTO_TOLERANCE['ndcg_at_10']} against torch fp32."]
    lines += ["", f"Command: `python -m benchmarks.scripts.encode_speed --dataset {args.dataset} --n {args.n} --threads {args.threads}`"]
    write_keeping_reading(out.with_suffix(".md"), "\n".join(lines))
    print(f"wrote {out}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
