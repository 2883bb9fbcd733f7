"""#6 end to end: decomposer config wiring, gold decompositions attached by the loader, the multihop report
(gold paired on its covered subset) and the CI gate (fails on a 0.02 drop, passes unchanged)."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from benchmarks.datasets.base import attach_decompositions
from benchmarks.datasets.enterprise import EnterpriseLoader
from benchmarks.errors import ConfigError, DataError
from benchmarks.report import main as report_main
from benchmarks.run.runner import run_experiment
from chunkers import Query
from conftest import write_beir
from test_config import compose_cfg
from benchmarks.tracking.store import download_artifact

QDMR_HEADER = "question_id,question_text,decomposition,operators,split\n"


def test_attach_decompositions_by_id_suffix_or_text(tmp_path):
    f = tmp_path / "qdmr.csv"
    f.write_text(QDMR_HEADER + 'HOTPOT_dev_abc123,"Who?",return the woman ;return position of #1,"[]",dev\n'
                 'HOTPOT_dev_zzz,"Which Is Older, X or Y?","return X ;return Y ;return which is older of #1 , #2","[]",dev\n')
    qs = [Query("abc123", "different text"), Query("other-id", "which is older x or y"), Query("none", "no match")]
    out, n = attach_decompositions(qs, f)
    assert n == 2
    assert out[0].metadata["qdmr"] == ["the woman", "position of #1"]
    assert out[1].metadata["qdmr"] == ["X", "Y", "which is older of #1 , #2"]
    assert "qdmr" not in out[2].metadata and "qdmr" not in qs[0].metadata  # inputs untouched
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,x\n")
    with pytest.raises(DataError, match=r"bad.csv:1: BREAK QDMR file lacks column"):
        attach_decompositions(qs, bad)
    with pytest.raises(DataError, match="dataset.decompositions: file not found"):
        attach_decompositions(qs, tmp_path / "missing.csv")


def test_enterprise_label_filter():
    ds = EnterpriseLoader(split="all", labels=["multi_hop"]).load()
    assert ds.queries and {q.metadata["label"] for q in ds.queries} == {"multi_hop"}
    assert set(ds.qrels) == {q.id for q in ds.queries}
    with pytest.raises(ConfigError, match="dataset.labels: unknown label"):
        EnterpriseLoader(labels=["multihop"])


CORPUS = [
    {"_id": "film", "title": "Kiss and Tell (1945 film)", "text": "A 1945 comedy starring Shirley Temple as Corliss Archer."},
    {"_id": "temple", "title": "Shirley Temple", "text": "Shirley Temple served as United States ambassador to Ghana."},
    {"_id": "radio", "title": "Meet Corliss Archer", "text": "Meet Corliss Archer is a radio comedy about Corliss Archer."},
    {"_id": "ghana", "title": "Ghana", "text": "Ghana is a country in West Africa."},
    {"_id": "x1", "title": "Walter Abel", "text": "Walter Abel was an American film and stage actor."},
    {"_id": "x2", "title": "Comedy film", "text": "A comedy film is a film genre. Corliss Archer is a character."},
]
QUERIES = [
    {"_id": "q1", "text": "What government position was held by the actress who portrayed Corliss Archer in Kiss and Tell?"},
    {"_id": "q2", "text": "Which country is Walter Abel from?"},
]
QRELS = [("q1", "film", 1), ("q1", "temple", 1), ("q2", "x1", 1)]


@pytest.fixture
def hop_data(tmp_path):
    folder = write_beir(tmp_path / "hop", CORPUS, QUERIES, QRELS)
    qdmr = tmp_path / "qdmr.csv"
    qdmr.write_text(QDMR_HEADER + 'HOTPOT_dev_q1,"x",return actress who portrayed Corliss Archer in Kiss and Tell ;'
                    'return government position held by #1,"[]",dev\n')
    return folder, qdmr


def run(folder, qdmr, uri, art, *extra):
    return run_experiment(compose_cfg(["dataset=beir", f"dataset.path={folder}", f"dataset.decompositions={qdmr}",
                                       "dataset.name=hop", f"tracking.uri={uri}", f"tracking.artifact_root={art}",
                                       "tracking.experiment=mh", "top_k=20", "metrics.k=[2,5,10,20]", *extra]))


def test_decomposers_run_from_config_and_multihop_report(hop_data, tmp_path, capsys):
    folder, qdmr = hop_data
    uri, art = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art")
    for dec in ("none", "iterative_links", "gold"):
        run(folder, qdmr, uri, art, f"decomposer={dec}")
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("mh").experiment_id])
    by_dec = {r.data.params["decomposer"]: r for r in runs}
    assert set(by_dec) == {"none", "iterative_links", "gold"}
    assert by_dec["gold"].data.metrics["cost/retrieval_calls_mean"] == pytest.approx(2.0)  # q1: 1 + 2 steps; q2: 1
    assert by_dec["gold"].data.metrics["cost/decomposed_queries"] == 1
    assert by_dec["none"].data.metrics["cost/retrieval_calls_mean"] == 1  # the plain retriever, unwrapped
    path = download_artifact(client, by_dec["gold"].info.run_id, "decomposition.jsonl", str(tmp_path / "dl"))
    rows = {r["query_id"]: r for r in map(json.loads, open(path))}
    assert rows["q1"]["subqueries"][0] == "actress who portrayed Corliss Archer in Kiss and Tell"
    assert rows["q1"]["subqueries"][1].startswith("government position held by ")
    assert rows["q2"] == {"query_id": "q2", "subqueries": [], "retrieval_calls": 1, "decomposed": False}
    capsys.readouterr()
    assert report_main(["multihop", "--experiment", "mh", "--tracking-uri", uri, "--out", str(tmp_path / "mh")]) == 0
    table = {r["decomposer"]: r for r in __import__("csv").DictReader(open(tmp_path / "mh.csv"))}
    assert table["none"]["queries"] == "2" and table["gold"]["queries"] == "1"  # gold: its covered subset
    assert table["gold"]["subset"] == "covered"
    assert (tmp_path / "mh.png").stat().st_size > 0
    with pytest.raises(Exception, match="decomposer.fusion: expected one of rrf\\|max\\|sum, got 'mean'"):
        run(folder, qdmr, uri, art, "decomposer=iterative", "decomposer.fusion=mean")


def _log(client, exp_id, dataset, decomposer, cov10, ndcg=None, tmp=None):
    """A FINISHED run of one point with its per_query.csv: per-query coverage@10 ``cov10`` (and nDCG@10)."""
    r = client.create_run(exp_id)
    client.log_param(r.info.run_id, "retriever", "bm25")
    client.log_param(r.info.run_id, "decomposer", decomposer)
    client.log_param(r.info.run_id, "chunker", "none")
    client.set_tag(r.info.run_id, "dataset", dataset)
    ndcg = ndcg if ndcg is not None else [0.5] * len(cov10)
    client.log_metric(r.info.run_id, "evidence_coverage_at_10", sum(cov10) / len(cov10))
    client.log_metric(r.info.run_id, "ndcg_at_10", sum(ndcg) / len(ndcg))
    folder = Path(tmp) / r.info.run_id
    folder.mkdir(parents=True)
    rows = ["query_id,split,label,query_class,n_relevant,evidence_coverage_at_10,ndcg_at_10"]
    rows += [f"q{i},test,,,2,{c},{n}" for i, (c, n) in enumerate(zip(cov10, ndcg))]
    (folder / "per_query.csv").write_text("\n".join(rows) + "\n")
    client.log_artifact(r.info.run_id, str(folder / "per_query.csv"))
    client.set_terminated(r.info.run_id, "FINISHED")
    return r.info.run_id


def test_gate_fails_only_on_a_significant_drop_beyond_the_margin(tmp_path, capsys, monkeypatch):
    """#36: per-query paired tests against the committed baseline: unchanged passes; 10 of 40 questions losing
    their evidence (-0.25, McNemar p = 0.002) fails; 2 of 40 (-0.05, beyond the margin but p = 0.5) passes as
    'worse'; the Markdown summary goes to $GITHUB_STEP_SUMMARY; an old means-only file asks for --update."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ci", artifact_location=str(tmp_path / "art"))
    full = [1] * 30 + [0] * 10
    _log(client, exp, "hotpot", "none", [0] * 40, tmp=tmp_path)
    _log(client, exp, "hotpot", "iterative", full, tmp=tmp_path)
    base = str(tmp_path / "baselines" / "ci.json")
    args = ["gate", "--experiment", "ci", "--tracking-uri", uri, "--baseline-file", base, "--margin", "0.01"]
    assert report_main(args) == 2  # no baseline yet: a clear error, not a silent pass
    assert "create it with" in capsys.readouterr().err
    assert report_main(args + ["--update"]) == 0
    saved = json.load(open(base))["runs"]
    point = "dataset=hotpot chunker=none retriever=bm25 decomposer=iterative"
    assert saved[point]["queries"] == sorted(f"q{i}" for i in range(40))
    assert dict(zip(saved[point]["queries"], saved[point]["values"]["evidence_coverage_at_10"]))["q35"] == 0
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert report_main(args) == 0  # unchanged
    assert "passed" in capsys.readouterr().out and "✅ passed" in summary.read_text()
    _log(client, exp, "hotpot", "iterative", [0] * 10 + [1] * 20 + [0] * 10, tmp=tmp_path)  # 10 questions lost
    assert report_main(args) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {point} evidence_coverage_at_10: 0.7500 -> 0.5000 (-0.2500, p 0.002, 40 queries)" in out
    assert "decomposer=none evidence_coverage_at_10" not in out.split("ok ")[0]  # only the fallen metric fails
    md = summary.read_text().split("### Retrieval gate")[-1]
    assert "❌ failed" in md and f"| FAIL | {point} | evidence_coverage_at_10 | 0.7500 | 0.5000 | -0.2500 | 0.002 | 40 |" in md
    _log(client, exp, "hotpot", "iterative", [0] * 2 + [1] * 28 + [0] * 10, tmp=tmp_path)  # 2 lost: noise at n=40
    assert report_main(args) == 0
    out = capsys.readouterr().out
    assert f"worse {point} evidence_coverage_at_10: 0.7500 -> 0.7000 (-0.0500, p 0.500, 40 queries)" in out
    assert json.load(open(base))["runs"] == saved  # never rewritten without --update
    # --baseline-run: the first run of the point as the baseline, by its short id, against the latest run
    first, *_, third, last = [r.info.run_id for r in client.search_runs(
        [exp], filter_string="params.decomposer = 'iterative'", order_by=["attributes.start_time ASC"])]
    gate_runs = ["gate", "--experiment", "ci", "--tracking-uri", uri, "--baseline-run", first[:8], "--summary", str(tmp_path / "s2.md")]
    assert report_main(gate_runs) == 0
    assert f"vs run {first[:8]}" in capsys.readouterr().out and "worse run " + last[:8] in (tmp_path / "s2.md").read_text().replace("| worse | ", "worse ")
    assert report_main([*gate_runs, "--run", third[:8]]) == 1  # the run that lost 10 questions
    assert f"FAIL  run {third[:8]}" in capsys.readouterr().out
    # a baseline written before per-query gating: say so, do not compare means
    Path(base).write_text(json.dumps({"runs": {point: {"evidence_coverage_at_10": 0.75}}}))
    assert report_main(args) == 2
    assert "rewrite it from the runs it should hold with --update" in capsys.readouterr().err


@pytest.mark.slow
def test_the_gate_on_scifact_passes_an_equal_run_and_fails_a_worse_one(tmp_path, shared_data, capsys):
    """#36 done-criterion, on a real dataset (BEIR scifact, 300 queries, BM25): the baseline file written from one
    run; the same pipeline run again passes (every per-query value equal); a run with BM25's term-frequency
    saturation set to 0 (k1=0: term counts ignored, a setting broken by mistake) fails on nDCG@10 —
    significantly, beyond the margin — and so does the same comparison against the first run as --baseline-run."""
    uri = f"sqlite:///{tmp_path}/m.db"
    common = ["dataset=beir", "dataset.name=scifact", f"dataset.data_dir={shared_data}", "retriever=bm25",
              f"tracking.uri={uri}", f"tracking.artifact_root={tmp_path}/art", f"cache.dir={tmp_path}/cache",
              "tracking.experiment=gate_scifact", "tracking.visuals=false"]
    bm25 = {"retriever": "bm25"}  # as Hydra's runtime would say (outside it, options are inferred from settings)
    first = run_experiment(compose_cfg(common), choices=bm25)
    base = str(tmp_path / "gate.json")
    gate = ["gate", "--experiment", "gate_scifact", "--tracking-uri", uri, "--baseline-file", base, "--margin", "0.01"]
    assert report_main([*gate, "--update"]) == 0
    again = run_experiment(compose_cfg([*common, "rerun=true"]), choices=bm25)
    assert again.run_id != first.run_id
    assert report_main(gate) == 0
    out = capsys.readouterr().out
    assert "passed — 6 checks ok, 0 failed" in out and "p 1.000, 300 queries" in out
    worse = run_experiment(compose_cfg([*common, "retriever.k1=0.0"]), choices=bm25)
    assert worse.metrics["ndcg_at_10"] < first.metrics["ndcg_at_10"] - 0.01
    assert report_main(gate) == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any(" ndcg_at_10: " in line for line in fails), out
    assert all("p <0.001" in line or float(line.split(", p ")[1].split(",")[0]) < 0.05 for line in fails)
    assert report_main(["gate", "--experiment", "gate_scifact", "--tracking-uri", uri,
                        "--baseline-run", first.run_id[:8], "--summary", str(tmp_path / "s.md")]) == 1
    assert f"FAIL  run {worse.run_id[:8]}" in capsys.readouterr().out


def test_the_github_actions_gate_template_calls_what_exists():
    """The documented workflow (benchmarks/ci/retrieval-gate.yml): its rbench-report line parses with the real
    parser as a gate, its rbench line composes with the real config, and the folder it caches is the cache.dir
    the run writes its embeddings to."""
    import shlex

    import yaml

    from benchmarks.report import build_parser

    flow = yaml.safe_load((Path(__file__).parent.parent / "benchmarks" / "ci" / "retrieval-gate.yml").read_text())
    steps = flow["jobs"]["gate"]["steps"]
    runs = [shlex.split(s["run"]) for s in steps if "run" in s]
    (report,) = [r for r in runs if r[0] == ".venv/bin/rbench-report"]
    args = build_parser().parse_args(report[1:])
    assert args.command == "gate" and args.baseline_file and args.tolerance == 0.02 and args.alpha == 0.05
    (bench,) = [r for r in runs if r[0] == ".venv/bin/rbench"]
    cfg = compose_cfg([*bench[1:], "dataset.path=benchmarks/data/handbook"])  # the template's own path is yours
    assert cfg.tracking.experiment == args.experiment
    (cache,) = [s for s in steps if s.get("uses", "").startswith("actions/cache@")]
    assert str(cfg.cache.dir) in cache["with"]["path"].split()
