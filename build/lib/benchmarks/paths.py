"""Where the project's own files are, in a checkout and in an installed wheel.

In a checkout the Hydra configs are the top-level ``conf/`` folder; a wheel carries the same files as
``benchmarks/conf`` (``pyproject.toml`` maps that package onto ``conf/``). Everything that reads a config
group asks :data:`CONF_DIR`, never a path of its own.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: the Hydra config folder: ``benchmarks/conf`` in an installed wheel, else the checkout's ``conf/``
CONF_DIR = PACKAGE / "conf" if (PACKAGE / "conf" / "config.yaml").is_file() else PACKAGE.parent / "conf"
DATA_DIR = PACKAGE / "data"  # files shipped with the package: published.json, the example handbook


def home() -> Path:
    """Where runs write: ``$RBENCH_HOME`` when set, else the current folder (as MLflow defaults to
    ``./mlruns``). Results, the MLflow store, caches and Hydra's run folders go under ``<home>/results``."""
    import os

    return Path(os.environ.get("RBENCH_HOME") or ".")


def results_dir() -> Path:
    return home() / "results"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite store ``<home>/results/mlflow.db``."""
    import os

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(results_dir() / 'mlflow.db').as_posix()}"


def default_cache_dir() -> Path:
    import os

    return Path(os.environ.get("RBENCH_CACHE_DIR") or results_dir() / "cache")
