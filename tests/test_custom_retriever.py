"""Your own retriever (#16): a function as a first stage, from Python and from config, scored and logged by the
same runner; a configured pipeline run from Python."""

from __future__ import annotations

import pytest

from benchmarks.api import evaluate_retriever, run


def test_function_retriever_from_python_scores_and_logs(tmp_path):
    seen = []

    def oracle(texts, top_k):
        seen.append(len(texts))
        return [{"POL-100-v4": 2.0, "no-such-doc": 9.0, "KB-1015": 1.0} for _ in texts]

    common = [f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/a", "tracking.experiment=fn",
              f"cache.dir={tmp_path}/c", "dataset.limit=4", "metrics.k=[1,2]", "top_k=5"]
    out = evaluate_retriever(oracle, common)
    assert seen == [4] and out["run_id"]
    assert all(list(hits) == ["POL-100-v4", "KB-1015"] for hits in out["run"].values())  # unknown id dropped
    assert out["metrics"]["function_unknown_ids"] == 4 and out["metrics"]["retrieval_calls_mean"] == 1
    assert 0.0 <= out["metrics"]["ndcg_at_2"] <= 1.0
    # composes with later stages like any first stage
    reranked = evaluate_retriever(oracle, [*common, "versions=filter", "rerun=true"])
    assert reranked["metrics"]["versions_filtered_docs"] > 0


def test_pipeline_from_python_equals_the_cli_config(tmp_path):
    common = [f"tracking.uri=sqlite:///{tmp_path}/m.db", f"tracking.artifact_root={tmp_path}/a", f"cache.dir={tmp_path}/c",
              "dataset.limit=5", "metrics.k=[10]", "top_k=10"]
    a = run(common)
    b = run([*common, "retriever.k1=1.5"])
    assert a["metrics"]["queries_scored"] == 5 and a["run_id"] != b["run_id"]
    assert a["run"] != b["run"]


def test_function_retriever_config_errors(tmp_path):
    from benchmarks.errors import ConfigError
    from retrievers.custom import FunctionRetriever
    from retrievers.infrastructure.errors import RetrieverError

    with pytest.raises(RetrieverError, match="retriever.function='os.nope': not an importable function"):
        FunctionRetriever(function="os.nope")
    with pytest.raises(ConfigError, match="retriever.function"):
        run([f"tracking.uri=sqlite:///{tmp_path}/m.db", "retriever=function"])
