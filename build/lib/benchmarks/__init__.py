"""Datasets, metrics, the experiment runner, tracking and reports. Top of the data flow.

``from benchmarks import evaluate`` is the Python API for scoring an existing run (:mod:`benchmarks.api`);
it is imported on first use, so ``import benchmarks`` stays light.
"""

from typing import Any

__all__ = ["evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from benchmarks.api import evaluate

        return evaluate
    raise AttributeError(f"module 'benchmarks' has no attribute {name!r}")
