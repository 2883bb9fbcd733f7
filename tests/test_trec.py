"""TREC files round-trip any id, and trec_eval on them reproduces our metrics."""

from hypothesis import given, strategies as st

from benchmarks.evaluation.metrics import evaluate
from benchmarks.evaluation.trec import escape_id, read_run, unescape_id, write_qrels, write_run


@given(st.text(min_size=1, max_size=30))
def test_escape_round_trips_any_id(value):
    token = escape_id(value)
    assert not any(ch.isspace() for ch in token)
    assert unescape_id(token) == value


def test_run_file_round_trip_with_spaces(tmp_path):
    run = {"q 1": {"Kiss and Tell (1945 film)": 2.5, "Shirley Temple": 3.25, "100% pure": 1.0}}
    path = tmp_path / "run.trec"
    write_run(run, path)
    lines = path.read_text().splitlines()
    assert all(len(line.split()) == 6 for line in lines)
    assert lines[0].split()[2] == "Shirley%20Temple"
    assert read_run(path) == run


def test_trec_eval_agrees_with_logged_metrics(tmp_path):
    import pytrec_eval

    qrels = {"q 1": {"Shirley Temple": 1, "Kiss and Tell": 1}, "q2": {"b": 2, "c": 1}}
    run = {"q 1": {"Shirley Temple": 0.5, "Other doc": 0.9, "Kiss and Tell": 0.5},
           "q2": {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.1}}
    write_run(run, tmp_path / "run.trec")
    write_qrels(qrels, tmp_path / "qrels.trec")
    # parse the files as trec_eval would (whitespace-separated tokens)
    file_run, file_qrels = {}, {}
    for line in (tmp_path / "run.trec").read_text().splitlines():
        q, _, d, _, s, _ = line.split()
        file_run.setdefault(q, {})[d] = float(s)
    for line in (tmp_path / "qrels.trec").read_text().splitlines():
        q, _, d, r = line.split()
        file_qrels.setdefault(q, {})[d] = int(r)
    trec = pytrec_eval.RelevanceEvaluator(file_qrels, {"ndcg_cut.1,2,3", "recall.2"}).evaluate(file_run)
    ours = evaluate(qrels, run, [1, 2, 3])
    for qid in qrels:
        for k in (1, 2, 3):
            assert abs(trec[escape_id(qid)][f"ndcg_cut_{k}"] - ours.per_query[qid][f"ndcg_at_{k}"]) < 1e-9
        assert abs(trec[escape_id(qid)]["recall_2"] - ours.per_query[qid]["recall_at_2"]) < 1e-9
