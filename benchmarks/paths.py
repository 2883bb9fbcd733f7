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


#: top-level config keys that say where things are read or written, not what is computed
PLACE_ROOTS = ("home", "data_dir", "cache", "tracking", "hydra", "rerun")
#: nested keys that are places wherever they stand (a stage's cache, a dataset's folder and queries file)
PLACE_LEAVES = ("cache_dir", "cache_mode")
PLACE_KEYS = {"dataset": ("path", "queries", "data_dir", "hf_root")}


def is_place(key: str) -> bool:
    """Whether a dotted config key (``cache.mode``, ``retriever.cache_dir``, ``dataset.path``) says where things
    are, not what is computed: the one rule for a run's identity (the fingerprint leaves these out, so moving the
    home or the cache, or ``cache.mode=refresh``, is the same run), for the params a run logs as its settings and
    for the settings reports compare."""
    parts = key.lstrip("+~").split(".")
    if parts[0] in PLACE_ROOTS or parts[-1] in PLACE_LEAVES:
        return True
    return len(parts) == 2 and parts[1] in PLACE_KEYS.get(parts[0], ())
