"""Where the project's own files are, in a checkout and in an installed wheel.

In a checkout the Hydra configs are the top-level ``conf/`` folder; a wheel carries the same files as
``benchmarks/conf`` (``pyproject.toml`` maps that package onto ``conf/``). Everything that reads a config
group asks :data:`CONF_DIR`, never a path of its own.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

PACKAGE = Path(__file__).resolve().parent
#: the Hydra config folder: ``benchmarks/conf`` in an installed wheel, else the checkout's ``conf/``
CONF_DIR = PACKAGE / "conf" if (PACKAGE / "conf" / "config.yaml").is_file() else PACKAGE.parent / "conf"
DATA_DIR = PACKAGE / "data"  # files shipped with the package: published.json, the example handbook


#: the config group file holding every location (``paths: default`` in conf/config.yaml)
PATHS_FILE = CONF_DIR / "paths" / "default.yaml"


@functools.lru_cache(maxsize=1)
def _paths_file() -> dict[str, Any]:
    """The group file as written (interpolations unresolved: they read the environment when a location is asked)."""
    return OmegaConf.to_container(OmegaConf.load(PATHS_FILE), resolve=False)


def location(key: str) -> str:
    """A location's default as a run would resolve it (``tracking.uri``, ``cache.dir``, ``home``), read from the paths
    group with the environment of now (``$RBENCH_HOME``, ``$MLFLOW_TRACKING_URI``, ``$RBENCH_CACHE_DIR``), for the
    tools that compose no Hydra config (rbench-report, rbench-audit, rbench-generate): derived once, in the YAML."""
    node = OmegaConf.create({k: v for k, v in _paths_file().items() if k != "hydra"})  # Hydra's folders need its ${now:}
    value = OmegaConf.select(node, key, throw_on_missing=True)
    if value is None:
        raise KeyError(f"{key}: not a location in {PATHS_FILE}")
    return str(value)


#: top-level config keys that say where things are read or written (every key the paths group sets), ``rerun``
#: (whether to skip a finished point, not what it computes) and ``engine`` (where the encoding runs: every engine
#: gives the same vectors, so a run finished on a laptop is the same run on Ray)
PLACE_ROOTS = (*(str(k) for k in _paths_file()), "rerun", "engine")
#: config nodes that are places wherever a stage holds them (``retriever.engine``, ``reranker.engine``)
PLACE_NODES = ("engine",)
#: nested keys that are places wherever they stand (a stage's cache, a dataset's folder and queries file)
PLACE_LEAVES = ("cache_dir", "cache_mode")
PLACE_KEYS = {"dataset": ("path", "queries", "data_dir", "hf_root")}


def is_place(key: str) -> bool:
    """Whether a dotted config key (``cache.mode``, ``retriever.cache_dir``, ``dataset.path``) says where things
    are, not what is computed: the one rule for a run's identity (the fingerprint leaves these out, so moving the
    home or the cache, or ``cache.mode=refresh``, is the same run), for the params a run logs as its settings and
    for the settings reports compare."""
    parts = key.lstrip("+~").split(".")
    if parts[0] in PLACE_ROOTS or parts[-1] in PLACE_LEAVES or any(p in PLACE_NODES for p in parts[1:]):
        return True
    return len(parts) == 2 and parts[1] in PLACE_KEYS.get(parts[0], ())


def runnable(name: str) -> str:
    """How to type ``name``, a console command of this install (``rbench``, ``rbench-audit``, ``mlflow``), in the
    shell that ran us: the bare name when the PATH finds this install's, else its path (``.venv/bin/rbench`` for a
    virtual environment that was never activated), so every hint a tool prints works when pasted."""
    here = Path(sys.executable).parent / name  # not resolved: a venv's python is a link to the system's
    if not here.exists():
        return name
    found = shutil.which(name)
    if found and Path(found).absolute() == here.absolute():
        return name
    try:
        return str(here.absolute().relative_to(Path.cwd().absolute()))
    except ValueError:
        return str(here)
