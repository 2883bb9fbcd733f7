"""Command-line arguments: those of the tools (``rbench-report``, ``rbench-audit``, ``rbench-generate``) ranged by
the same checks as the config's keys (:mod:`chunkers.options`), so ``--k -5`` reads like ``top_k=-5``; and the
overrides an ``rbench`` job was started with, which the multi-run experiments (story, beir_full) pass on to every
run they compose."""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable

from benchmarks.datasets.limits import RANGES
from chunkers.options import Check, integer, number

__all__ = ["arg_type", "command_line_overrides", "integer", "limit", "number"]


def arg_type(kind: Callable[[str], Any], check: Check) -> Callable[[str], Any]:
    """An argparse ``type=`` from a rule: ``--k -5`` is ``error: argument --k: expected an integer >= 1, got
    -5`` (exit 2), with the same wording as the config's keys."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        problem = check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    convert.__name__ = kind.__name__
    return convert


def limit(text: str) -> tuple[str, float]:
    """``--limit json_file_mb=4096`` (or ``limits.json_file_mb=4096``): one of the config's ``limits.*`` for a tool,
    ranged as the config ranges it (:data:`benchmarks.datasets.limits.RANGES`)."""
    key, sep, value = text.partition("=")
    key = key.strip().removeprefix("limits.")
    if not sep or key not in RANGES:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME one of {', '.join(RANGES)}, got {text!r}")
    lo, hi = RANGES[key]
    try:
        number_ = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"limits.{key}: expected a number, got {value!r}") from None
    problem = number(lo, hi)(number_)
    if problem:
        raise argparse.ArgumentTypeError(f"limits.{key}: {problem}")
    return key, number_


def command_line_overrides(*own: str) -> list[str]:
    """The overrides of the running Hydra job (``rbench experiment=story retriever.k1=1.2`` gives
    ``["retriever.k1=1.2"]``), less the ``experiment`` choice and the keys under ``own`` (the experiment's own
    settings, e.g. ``beir_full``), with or without a ``+``/``~``/``++`` prefix; ``[]`` outside a Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    try:
        task = HydraConfig.get().overrides.task
    except ValueError:  # not running under @hydra.main (tests, notebooks)
        return []
    drop = ("experiment", *own)

    def key(override: str) -> str:
        return re.split(r"[=.]", override.lstrip("+~"), maxsplit=1)[0]

    return [o for o in task if key(o) not in drop]
