"""Console entry points. Only Hydra is imported at start-up so ``--help`` and config errors are instant."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf


def beir_folders(data_dir: str) -> str:
    """Resolver ``${rbench.beir_folders:${data_dir}}``: every BEIR folder under ``data_dir/beir``, as a
    comma-separated sweep list (sweep presets use it so new folders are picked up without editing)."""
    root = Path(data_dir) / "beir"
    names = sorted(p.name for p in root.glob("*") if (p / "corpus.jsonl").is_file()) if root.is_dir() else []
    if not names:
        raise ValueError(f"no BEIR folders (with corpus.jsonl) under {root}; set RBENCH_DATA_DIR or pass "
                         "dataset.name=<a,b,...> on the command line")
    return ",".join(names)


OmegaConf.register_new_resolver("rbench.beir_folders", beir_folders, replace=True)


CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """``rbench [overrides...]`` runs one experiment point; ``rbench -m ...`` sweeps."""
    from hydra.errors import InstantiationException

    from benchmarks.errors import RbenchError
    from retrievers.errors import RetrieverError

    try:
        if cfg.get("story"):
            from benchmarks.story import run_story

            return run_story(cfg)
        from benchmarks.runner import run_experiment

        return run_experiment(cfg)
    except (RbenchError, RetrieverError) as err:
        print(f"rbench: error: {err}", file=sys.stderr)
        sys.exit(2)
    except InstantiationException as err:
        cause = err.__cause__ or err
        print(f"rbench: config error: {cause}", file=sys.stderr)
        sys.exit(2)


def report() -> None:
    """``rbench-report``: compare runs read back from MLflow (see ``benchmarks.report``)."""
    from benchmarks.report import main as report_main

    sys.exit(report_main())


def audit() -> None:
    """``rbench-audit``: classify each failed query of a run into its cause (see ``benchmarks.audit``)."""
    from benchmarks.audit import main as audit_main

    sys.exit(audit_main())
