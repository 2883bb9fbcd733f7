"""The OmegaConf resolvers the configs use (``${rbench.beir_folders:...}``, ``${rbench.package_data:...}``),
registered when this module is imported: by the console entry points and the Python API, before any config is
composed."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from benchmarks.datasets.beir import is_beir_folder
from benchmarks.paths import DATA_DIR


def beir_folders(data_dir: str) -> str:
    """Resolver ``${rbench.beir_folders:${data_dir}}``: every BEIR folder under ``data_dir/beir``, as a
    comma-separated sweep list (sweep presets use it so new folders are picked up without editing)."""
    root = Path(data_dir) / "beir"
    names = sorted(p.name for p in root.glob("*") if is_beir_folder(p)) if root.is_dir() else []
    if not names:
        raise ValueError(f"no BEIR folders (with corpus.jsonl or corpus.jsonl.gz) under {root}; set RBENCH_DATA_DIR or pass "
                         "dataset.name=<a,b,...> on the command line")
    return ",".join(names)


OmegaConf.register_new_resolver("rbench.beir_folders", beir_folders, replace=True)


def package_data(relative: str) -> str:
    """``${rbench.package_data:handbook}``: a path among the files shipped with the package (the example
    handbook), wherever it is installed."""
    return str(DATA_DIR / relative)


OmegaConf.register_new_resolver("rbench.package_data", package_data, replace=True)
