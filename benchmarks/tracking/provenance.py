"""What a run was made from: code version, git commit, library versions, and the config fingerprint."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from benchmarks.paths import is_place
from retrievers.infrastructure.fingerprint import fingerprint, installed_versions
from retrievers.infrastructure.redact import redact_config

ROOT = Path(__file__).resolve().parent.parent
CODE_DIRS = ("chunkers", "retrievers", "benchmarks", "conf")
PACKAGES = ("bm25s", "rank-bm25", "ranx", "mlflow", "hydra-core", "beir", "numpy", "sentence-transformers",
            "faiss-cpu", "torch", "PyStemmer", "datasets")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the project's source and config files (works without git, changes with any edit)."""
    h = hashlib.sha256()
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    return installed_versions(*PACKAGES)


def identity_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The resolved config minus every location key (:func:`benchmarks.paths.is_place`, at any depth); the
    dataset fingerprint stands in for the data's location."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if is_place(key):
            continue
        out[k] = identity_config(v, f"{key}.") if isinstance(v, Mapping) else v
    return out


def config_fingerprint(cfg: Mapping[str, Any], dataset_fingerprint: str, code: str | None = None) -> str:
    """A run's identity: resolved config minus output paths + dataset fingerprint + code version. Secrets are
    masked first (the structural rule only, the same in every environment): a rotated password or key is the
    same run."""

    identity = redact_config(identity_config(cfg), values=False)
    return fingerprint({"config": identity, "dataset": dataset_fingerprint, "code": code or code_version()})
