"""rbench-report: significance tests by hand, and a golden file fixing the table format."""

import csv
import json
from pathlib import Path

import pytest

from benchmarks.report import main as report_main, paired_test
from benchmarks.tracking.tracker import Tracker

GOLDEN = Path(__file__).parent / "golden"


def log_run(uri, art, experiment, retriever, dataset, per_query, extra_params=None):
    t = Tracker(uri=uri, experiment=experiment, artifact_root=art)
    with t:
        t.start({"dataset": dataset, "config_fingerprint": f"{retriever}-{dataset}-{json.dumps(extra_params)}"})
        t.log_params({"retriever": retriever, "dataset.name": dataset, "dataset.split": "test",
                      "tracking.uri": uri, **(extra_params or {})})
        cols = ["ndcg_at_10", "recall_at_100", "evidence_coverage_at_10"]
        means = {c: sum(r[c] for r in per_query.values()) / len(per_query) for c in cols}
        t.log_metrics({**means, "queries_scored": len(per_query)})
        folder = Path(art) / f"tmp-{t.run_id}"
        folder.mkdir(parents=True)
        with open(folder / "per_query.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["query_id", "split", "label", "n_relevant", *cols])
            for qid, row in per_query.items():
                w.writerow([qid, "test", "", 1, *(row[c] for c in cols)])
        t.log_artifacts(folder)
    return t.run_id


def pq(values, recalls, coverage):
    return {f"q{i}": {"ndcg_at_10": v, "recall_at_100": r, "evidence_coverage_at_10": c}
            for i, (v, r, c) in enumerate(zip(values, recalls, coverage))}


@pytest.fixture
def store(tmp_path):
    uri, art = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    n = 12
    log_run(uri, art, "cmp", "bm25", "setA", pq([0.5] * n, [0.8] * n, [1, 0] * (n // 2)))
    log_run(uri, art, "cmp", "dense", "setA", pq([0.7] * (n - 1) + [0.4], [0.8] * n, [1] * n))
    log_run(uri, art, "cmp", "bm25", "setB", pq([0.3, 0.6, 0.2, 0.9], [1, 1, 0.5, 1], [1, 1, 0, 1]))
    log_run(uri, art, "cmp", "dense", "setB", pq([0.3, 0.6, 0.2, 0.9], [1, 1, 0.5, 1], [1, 1, 0, 1]))
    return uri, tmp_path


def test_mcnemar_and_permutation_by_hand():
    # McNemar: 6 discordant pairs all one way -> 2 * 0.5**6
    assert paired_test("evidence_coverage_at_10", [0] * 6 + [1] * 4, [1] * 10) == pytest.approx(2 * 0.5 ** 6)
    assert paired_test("evidence_coverage_at_10", [1, 0], [1, 0]) == 1.0
    # permutation with n=4 enumerates all 16 sign patterns: |mean| >= observed only for all-same signs
    p = paired_test("ndcg_at_10", [0.0] * 4, [0.1, 0.2, 0.3, 0.4])
    assert p == pytest.approx(2 / 16)
    assert paired_test("ndcg_at_10", [0.5, 0.5], [0.5, 0.5]) == 1.0


def test_golden_comparison_table(store, capsys):
    uri, tmp = store
    out = tmp / "report"
    assert report_main(["--experiment", "cmp", "--tracking-uri", uri, "--baseline", "retriever=bm25",
                        "--metrics", "ndcg_at_10,recall_at_100,evidence_coverage_at_10", "--out", str(out)]) == 0
    text = (tmp / "report.md").read_text()
    golden = GOLDEN / "report_table.md"
    if not golden.exists():  # write it once, review it, commit it
        golden.write_text(text)
        pytest.fail(f"golden file {golden} was missing and has been written; review and commit it")
    assert text == golden.read_text()
    rows = list(csv.DictReader(open(tmp / "report.csv")))
    assert len(rows) == 4 and {"run_id", "baseline_run_id", "ndcg_at_10_p"} <= set(rows[0])


def test_unknown_experiment_and_baseline(store, capsys):
    uri, _ = store
    assert report_main(["--experiment", "nope", "--tracking-uri", uri]) == 2
    assert "no experiment 'nope'" in capsys.readouterr().err
    assert report_main(["--experiment", "cmp", "--tracking-uri", uri, "--baseline", "retriever=colbert"]) == 2
    assert "no run matches --baseline" in capsys.readouterr().err


def test_gap_report_with_published_figures(tmp_path):
    uri, art = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    log_run(uri, art, "gap", "bm25", "scifact", pq([0.68, 0.70, 0.66, 0.67], [0.9] * 4, [1] * 4))
    log_run(uri, art, "gap", "dense", "scifact", pq([0.64, 0.65, 0.63, 0.66], [0.85] * 4, [1] * 4),
            {"retriever.encoder.model": "sentence-transformers/all-MiniLM-L6-v2"})
    out = tmp_path / "gap"
    assert report_main(["gap", "--experiment", "gap", "--tracking-uri", uri, "--out", str(out)]) == 0
    text = (tmp_path / "gap.md").read_text()
    assert "| scifact | 4 | 0.6775 | 0.6450 | -0.0325" in text
    assert "| scifact | Pyserini BM25 flat | 0.679 |" in text and "| scifact | MTEB all-MiniLM-L6-v2 | 0.645 |" in text
    assert (tmp_path / "gap.png").stat().st_size > 5000


def test_gap_report_with_splade_holm_adjusted(tmp_path):
    """Two systems against BM25 on one dataset, two metrics: four paired tests. With n=4 the permutation test
    enumerates all 16 sign patterns: a difference of one sign on every query has p = 2/16 = 0.125, no difference
    p = 1. Holm over (0.125, 0.125, 0.125, 1.0): 4 x 0.125 = 0.5 for the three, 1.0 for the last."""
    uri, art = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    log_run(uri, art, "gap", "bm25", "scifact", pq([0.68, 0.70, 0.66, 0.67], [0.9] * 4, [1] * 4))
    log_run(uri, art, "gap", "dense", "scifact", pq([0.64, 0.65, 0.63, 0.66], [0.85] * 4, [1] * 4),
            {"retriever.model": "sentence-transformers/all-MiniLM-L6-v2"})  # a dense run stored before the encoder node
    log_run(uri, art, "gap", "splade", "scifact", pq([0.72, 0.73, 0.71, 0.72], [0.9] * 4, [1] * 4),
            {"retriever.model": "splade-tiny-msmarco"})
    out = tmp_path / "gap"
    assert report_main(["gap", "--experiment", "gap", "--tracking-uri", uri, "--out", str(out)]) == 0
    text = (tmp_path / "gap.md").read_text()
    assert "| dataset | queries | BM25 nDCG@10 | dense nDCG@10 | Δ dense − BM25 | p (Holm) | SPLADE nDCG@10 |" in text
    assert "| scifact | 4 | 0.6775 | 0.6450 | -0.0325 | 0.500 | 0.7200 | +0.0425 | 0.500 |" in text
    assert "| scifact | 4 | 0.9000 | 0.8500 | -0.0500 | 0.500 | 0.9000 | +0.0000 | 1.000 |" in text
    assert "| scifact | Anserini SPLADE++ ED | 0.704 | 0.935 | anserini_splade | 0.7200 | — |" in text
    rows = list(csv.DictReader(open(tmp_path / "gap.csv")))
    assert float(rows[0]["p_holm_splade_ndcg_at_10"]) == pytest.approx(0.5)


def test_chunking_report(tmp_path):
    uri, art = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "art")
    values = {"none": [0.5, 0.6, 0.7, 0.8], "auto": [0.9, 0.9, 0.9, 0.9]}
    for name, vals in values.items():
        rid = log_run(uri, art, "chunks", "bm25", "ent", pq(vals, [1] * 4, [1] * 4), {"chunker": name})
        t = Tracker(uri=uri, experiment="chunks", artifact_root=art)
        t.run_id = rid
        t.log_metrics({"evidence_split_rate": 0.4 if name == "none" else 0.0, "span_recall_at_budget": 0.3,
                       "chunk_count": 10})
    out = tmp_path / "chunking"
    assert report_main(["chunking", "--experiment", "chunks", "--tracking-uri", uri, "--out", str(out)]) == 0
    text = (tmp_path / "chunking.md").read_text()
    assert "| bm25 | none | 0.4000 | 0.3000 |" in text
    assert "| bm25 | auto | 0.0000 | 0.3000 |" in text and "0.125" in text  # p over 4 paired queries: 2/16
    assert (tmp_path / "chunking.png").stat().st_size > 5000


def test_holm_by_hand():
    from benchmarks.evaluation.stats import holm

    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4*0.005, 3*0.01, max(2*0.03, ...), max(1*0.04, 0.06)
    assert holm([0.01, 0.04, 0.03, float("nan"), 0.005])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.01, 0.04, 0.03, float("nan"), 0.005])[4] == pytest.approx(0.02)
    assert holm([0.2]) == [0.2] and holm([0.6, 0.7]) == [1.0, 1.0]


def test_latex_export(store, tmp_path):
    uri, tmp = store
    out = tmp / "tex"
    assert report_main(["--experiment", "cmp", "--tracking-uri", uri, "--baseline", "retriever=bm25", "--metrics",
                        "ndcg_at_10,evidence_coverage_at_10", "--out", str(out), "--format", "md,latex"]) == 0
    tex = (tmp / "tex.tex").read_text()
    assert r"\begin{tabular}{lrrrrr}" in tex and tex.count(r"\\") >= 5 and r"\end{tabular}" in tex
    assert r"ndcg\_at\_10" in tex and r"p\textless{}0.001" in tex and "Holm" in tex
    assert not (tmp / "tex.csv").exists()  # only the formats asked for
    assert report_main(["--experiment", "cmp", "--tracking-uri", uri, "--format", "docx"]) == 2
