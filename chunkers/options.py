"""Option declarations: the values a component accepts, declared next to its class as ``OPTIONS`` (key ->
check) and read by the config validator (``benchmarks.run.validate``), which keeps no list of its own. A
check returns None when a value is fine, else what is wrong (``expected ..., got ...``); the same checks
give the command-line tools their ranges (:func:`arg_type`).

This module sits at the bottom of the import flow (chunkers <- retrievers <- benchmarks) so every layer can
declare options with it; it imports nothing of the project.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

Check = Callable[[Any], "str | None"]  # None when fine, else what is wrong ("expected ..., got ...")
Options = Mapping[str, Check]  #: a component's ``OPTIONS``: config key -> check


def show(v: Any) -> str:
    return "null" if v is None else repr(v)


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected an integer, got {show(v)}"
        if lo is not None and v < lo or hi is not None and v > hi:
            return f"expected an integer {'>= ' + str(lo) if hi is None else f'in [{lo}, {hi}]'}, got {v}"
        return None
    return check


def number(lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            return f"expected a number, got {show(v)}"
        if lo is not None and (v <= lo if open_lo else v < lo) or hi is not None and v > hi:
            rng = f"{'>' if open_lo else '>='} {lo}" if hi is None else f"in [{lo}, {hi}]"
            return f"expected a number {rng}, got {v}"
        return None
    return check


def one_of(*options: Any) -> Check:
    def check(v: Any) -> str | None:
        return None if v in options else f"expected one of {'|'.join(str(o) for o in options)}, got {show(v)}"
    return check


def optional(inner: Check) -> Check:
    return lambda v: None if v is None else inner(v)


def boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"expected true|false, got {show(v)}"


def string(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else f"expected a non-empty string, got {show(v)}"


def int_list(lo: int = 1) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not v:
            return f"expected a non-empty list of integers >= {lo}, e.g. [1,5,10], got {show(v)}"
        bad = [x for x in v if isinstance(x, bool) or not isinstance(x, int) or x < lo]
        return f"expected integers >= {lo}, got {', '.join(show(x) for x in bad)}" if bad else None
    return check


def device(v: Any) -> str | None:
    ok = isinstance(v, str) and (v in ("cpu", "cuda", "auto", "mps") or v.startswith("cuda:"))
    return None if ok else f"expected cpu|cuda|cuda:N|auto, got {show(v)}"
