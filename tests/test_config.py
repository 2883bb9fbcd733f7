"""Every config group option composes and instantiates; presets and errors behave as the contract says."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from benchmarks.evaluation.metrics import metric_names

CONF = Path(__file__).resolve().parent.parent / "conf"
RBENCH = str(Path(sys.executable).parent / "rbench")


def compose_cfg(overrides=()):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_defaults():
    cfg = compose_cfg()
    assert cfg.dataset.name == "enterprise" and cfg.retriever.backend == "bm25s" and cfg.top_k == 100
    assert list(cfg.metrics.k) == [1, 2, 5, 10, 20, 100]
    assert cfg.cache.mode == "use" and cfg.tracking.experiment == "rbench"
    for key in ("name", "path", "split", "strict", "limit"):
        assert key in cfg.dataset


REQUIRED = {("retriever", "function"): ["retriever.function=os.path.join"],  # options with a mandatory (???) key
            ("dataset", "files"): ["dataset.path=."], ("dataset", "irds"): ["dataset.id=vaswani"]}


@pytest.mark.parametrize("group", ["dataset", "chunker", "retriever"])
def test_every_option_composes_and_instantiates(group):
    for option in options(group):
        cfg = compose_cfg([f"{group}={option}", *REQUIRED.get((group, option), [])])
        obj = instantiate(cfg[group])
        assert obj is not None, option


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_experiment_preset_composes(preset):
    cfg = compose_cfg([f"experiment={preset}"])
    assert cfg.tracking.experiment == preset


def test_overrides_keep_types():
    cfg = compose_cfg(["retriever.k1=1.2", "retriever.backend=rank_bm25", "retriever.variant=robertson"])
    r = instantiate(cfg.retriever)
    assert r.k1 == 1.2 and r.backend == "rank_bm25"


def test_unknown_group_option_lists_allowed_values():
    with pytest.raises(ConfigCompositionException, match="Could not find 'retriever/nope'"):
        compose_cfg(["retriever=nope"])


def test_cli_unknown_option_and_bad_value_exit_nonzero(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}
    out = subprocess.run([RBENCH, "retriever=nope"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "no option 'nope' in config group 'retriever'; options: bm25" in out.stderr
    out = subprocess.run([RBENCH, "retriever.backend=elastic", f"tracking.uri=sqlite:///{tmp_path}/m.db"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and "retriever.backend: expected one of bm25s|rank_bm25, got 'elastic'" in out.stderr
    assert not (tmp_path / "m.db").exists()  # config errors fail before anything is logged


def test_cli_help_is_quick_and_lists_groups(tmp_path):
    out = subprocess.run([RBENCH, "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0
    assert "dataset: beir, enterprise, enterprise_multihop, files, hotpotqa, hotpotqa_dev500, hotpotqa_sample, irds, musique" in out.stdout
    assert "decomposer: gold, heuristic, iterative, iterative_links, llm, none" in out.stdout


def test_reserved_commands_exist():
    for name in ("rbench-report", "rbench-audit"):
        assert (Path(sys.executable).parent / name).exists()


def test_metric_names_are_mlflow_safe():
    names = metric_names([1, 10], prefix="train_")
    assert "train_ndcg_at_10" in names and "train_evidence_coverage_at_1" in names
    assert all("@" not in n for n in names)


def test_locations_never_change_a_runs_identity(tmp_path):
    """#34: moving the home or the cache, or cache.mode=refresh, is the same run (rerun=false skips it); a setting
    that changes what is computed is not. One rule (benchmarks.paths.is_place) for the fingerprint, the logged
    params' order and the reports' varying settings."""
    from omegaconf import OmegaConf

    from benchmarks.paths import is_place
    from benchmarks.tracking.provenance import config_fingerprint

    def fp(*overrides):
        cfg = compose_cfg(["retriever=hybrid", *overrides])
        return config_fingerprint(OmegaConf.to_container(cfg, resolve=True), "dataset-fp", code="code")

    base = fp()
    assert fp(f"home={tmp_path}") == base
    assert fp(f"cache.dir={tmp_path}/cache", "cache.mode=refresh") == base
    assert fp(f"tracking.uri=sqlite:///{tmp_path}/m.db", "rerun=true", f"data_dir={tmp_path}") == base
    assert fp("retriever.retrievers.bm25.k1=1.2") != base and fp("top_k=50") != base
    assert is_place("retriever.cache_dir") and is_place("retriever.retrievers.dense.cache_mode") and is_place("dataset.path")
    assert not is_place("retriever.k1") and not is_place("dataset.name")


def test_sweep_presets_find_gzipped_beir_folders(tmp_path):
    """#34: experiment=beir_gap's resolver and beir_full read one rule: a collection whose corpus is only
    corpus.jsonl.gz is a BEIR folder (the resolver used to drop it)."""
    import gzip

    from benchmarks.resolvers import beir_folders

    (tmp_path / "beir" / "plain").mkdir(parents=True)
    (tmp_path / "beir" / "plain" / "corpus.jsonl").write_text("{}\n")
    (tmp_path / "beir" / "zipped").mkdir()
    with gzip.open(tmp_path / "beir" / "zipped" / "corpus.jsonl.gz", "wt") as fh:
        fh.write("{}\n")
    (tmp_path / "beir" / "notes").mkdir()
    assert beir_folders(str(tmp_path)) == "plain,zipped"


def test_the_tools_defaults_follow_the_paths_group(monkeypatch, tmp_path):
    """rbench-report/-audit/-generate compose no Hydra config: their default store and cache are read from
    conf/paths/default.yaml with the environment of now, the same values a run resolves."""
    from hydra import compose, initialize_config_dir

    from benchmarks.paths import CONF_DIR, location

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("RBENCH_HOME", str(tmp_path))
    assert location("tracking.uri") == f"sqlite:///{tmp_path}/results/mlflow.db"
    assert location("cache.dir") == f"{tmp_path}/results/cache"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config")
    assert cfg.tracking.uri == location("tracking.uri") and cfg.cache.dir == location("cache.dir")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert location("tracking.uri") == "http://127.0.0.1:5999"
    with pytest.raises(KeyError):
        location("retriever.k1")
