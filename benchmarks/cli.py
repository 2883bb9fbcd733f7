"""Console entry points. Only Hydra is imported at start-up so ``--help`` and config errors are instant."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig


CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    """``rbench [overrides...]`` runs one experiment point; ``rbench -m ...`` sweeps."""
    from hydra.errors import InstantiationException

    from benchmarks.errors import RbenchError
    from retrievers.errors import RetrieverError

    try:
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
    """``rbench-report``: reserved; the comparison/gap/fusion/gate reports arrive with later issues."""
    print("rbench-report: not available yet (reserved name; see the README's contract)", file=sys.stderr)
    sys.exit(2)


def audit() -> None:
    """``rbench-audit``: reserved; the retrieval audit arrives with a later issue."""
    print("rbench-audit: not available yet (reserved name; see the README's contract)", file=sys.stderr)
    sys.exit(2)
