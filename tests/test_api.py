"""The Python API (#16): ``from benchmarks import evaluate`` on dicts and on files, and every Python block of the
README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_evaluate_dicts_files_and_names(tmp_path):
    from benchmarks import evaluate
    from benchmarks.evaluation.trec import write_qrels, write_run

    run = {"q1": {"a": 3.0, "b": 2.0}, "q2": {"c": 1.0}}
    qrels = {"q1": {"b": 1}, "q2": {"c": 1, "d": 1}, "q3": {"x": 0}}
    scores = evaluate(run, qrels, k=[1, 2])
    assert set(scores) == {f"{m}_at_{k}" for k in (1, 2) for m in ("ndcg", "recall", "mrr", "map", "evidence_coverage")}
    assert scores["mrr_at_2"] == pytest.approx((0.5 + 1.0) / 2) and scores["evidence_coverage_at_2"] == 0.5
    write_run(run, tmp_path / "run.trec")
    write_qrels(qrels, tmp_path / "qrels.trec")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tb\t1\nq2\tc\t1\nq2\td\t1\n")
    assert evaluate(tmp_path / "run.trec", str(tmp_path / "qrels.trec"), k=[1, 2]) == pytest.approx(scores)
    assert evaluate(str(tmp_path / "run.trec"), tmp_path / "qrels.tsv", k=[1, 2]) == pytest.approx(scores)
    full = evaluate(run, qrels, k=[2], per_query=True)
    assert full["skipped"] == ["q3"] and full["per_query"]["q2"]["recall_at_2"] == 0.5
    with pytest.raises(ValueError, match="k must be"):
        evaluate(run, qrels, k=[0])


def test_readme_python_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    for expected in re.findall(r"print\(.*\)\s+# (\S+)", "\n".join(blocks)):
        assert expected in printed
