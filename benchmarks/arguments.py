"""Command-line arguments of the tools (``rbench-report``, ``rbench-audit``, ``rbench-generate``) ranged by the
same checks as the config's keys (:mod:`chunkers.options`), so ``--k -5`` reads like ``top_k=-5``."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from chunkers.options import Check, integer, number

__all__ = ["arg_type", "integer", "number"]


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
