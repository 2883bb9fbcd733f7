"""Bounded reading: how much of any input file is read into memory, and how deep a parser may recurse.

Every reader of user data (corpus, queries, qrels, traces, document folders, front matter) goes through
these checks, so a single-line 50 MB document, a gzip that expands to gigabytes, a symlink to ``/dev/zero``,
a JSON line nested 100,000 levels deep or a YAML "billion laughs" is a clear error (or, in a document
folder, a file skipped with its reason) instead of exhausting memory or the stack.

The limits are the ``limits.*`` config keys (``rbench limits.document_mb=32``); the tools without a Hydra
config (``rbench-audit``, ``rbench-generate``) read ``RBENCH_LIMIT_<NAME>`` environment variables
(``RBENCH_LIMIT_LINE_MB=256``). Defaults:

=================  ========  =====================================================================
key                default   what it bounds
=================  ========  =====================================================================
``line_mb``        64        one line of a data file (JSON lines, TSV, CSV), enforced while reading,
                             also inside a ``.gz`` stream
``document_mb``    8         one document's text: a corpus record, or a folder file after extraction
``file_mb``        256       one file of a documents folder as stored (PDF, DOCX, HTML, ...)
``json_file_mb``   2048      a ``.json`` file read whole (HotpotQA/MuSiQue lists, OTLP exports)
``data_file_gb``   64        all the bytes of one data file, decompressed (a gzip bomb of short lines)
``json_depth``     64        nesting of one JSON value, checked before the parser recurses
``yaml_values``    10000     values of a front matter with its YAML aliases expanded
=================  ========  =====================================================================
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from benchmarks.errors import ConfigError

MB = 1 << 20


@dataclass(frozen=True)
class Limits:
    line_mb: float = 64
    document_mb: float = 8
    file_mb: float = 256
    json_file_mb: float = 2048
    data_file_gb: float = 64
    json_depth: int = 64
    yaml_values: int = 10000

    @property
    def line_bytes(self) -> int:
        return int(self.line_mb * MB)

    @property
    def document_chars(self) -> int:
        return int(self.document_mb * MB)

    @property
    def file_bytes(self) -> int:
        return int(self.file_mb * MB)

    @property
    def json_file_bytes(self) -> int:
        return int(self.json_file_mb * MB)

    @property
    def data_file_bytes(self) -> int:
        return int(self.data_file_gb * 1024 * MB)


#: each limit's range, read by the config validator (``limits.<key>``)
RANGES: dict[str, tuple[float, float | None]] = {"line_mb": (0.001, None), "document_mb": (0.001, None), "file_mb": (0.001, None),
                                                 "json_file_mb": (0.001, None), "data_file_gb": (0.001, None),
                                                 "json_depth": (2, 100000), "yaml_values": (1, None)}


def from_env(environ: Mapping[str, str] | None = None) -> Limits:
    """The defaults, with ``RBENCH_LIMIT_<NAME>`` environment variables applied (a bad value is an error)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Limits):
        raw = environ.get(f"RBENCH_LIMIT_{f.name.upper()}")
        if raw is None or not raw.strip():
            continue
        try:
            value = int(raw) if f.type in (int, "int") else float(raw)
        except ValueError:
            raise ConfigError(f"RBENCH_LIMIT_{f.name.upper()}: expected a number, got {raw!r}") from None
        lo, hi = RANGES[f.name]
        if value < lo or (hi is not None and value > hi):
            raise ConfigError(f"RBENCH_LIMIT_{f.name.upper()}: expected a number >= {lo}, got {raw}")
        values[f.name] = value
    return Limits(**values)


_current: list[Limits] = []


def current() -> Limits:
    """The limits in force: those :func:`configure` set (a run's ``limits.*``), else the environment's."""
    if not _current:
        _current.append(from_env())
    return _current[0]


def configure(values: Mapping[str, Any] | None) -> Limits:
    """Set the limits for this process from a config node (``limits``); unknown keys are ignored (the
    validator names them)."""
    base = from_env()
    if values:
        known = {f.name for f in fields(Limits)}
        base = replace(base, **{k: v for k, v in dict(values).items() if k in known and v is not None})
    _current[:] = [base]
    return base


def size(n: float) -> str:
    return f"{n / MB:.0f} MB" if n >= MB else f"{n / 1024:.0f} KB" if n >= 1024 else f"{int(n)} bytes"


# ------------------------------------------------------------------------------------------ JSON depth
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(text: str, limit: int | None = None) -> int | None:
    """The nesting depth of a JSON text when it exceeds ``limit``, else None; linear, no recursion (cheap
    for ordinary lines: only a text holding more brackets than the limit is scanned)."""
    limit = current().json_depth if limit is None else limit
    if text.count("[") + text.count("{") <= limit:
        return None
    depth = 0
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        if tok in "[{":
            depth += 1
            if depth > limit:
                return depth
        elif tok in "]}":
            depth -= 1
    return None


def depth_message(limit: int | None = None) -> str:
    limit = current().json_depth if limit is None else limit
    return f"JSON nested more than {limit} levels deep (limits.json_depth)"


# ------------------------------------------------------------------------------------------ YAML
def yaml_load(text: str, limit: int | None = None) -> Any:
    """``yaml.safe_load`` with the number of values bounded *with aliases expanded*: a front matter whose
    anchors and aliases would expand to more than ``limit`` values ("billion laughs") raises ValueError
    before anything is constructed or copied."""
    import yaml

    limit = current().yaml_values if limit is None else limit
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}
        visiting: set[int] = set()

        def expanded(n: Any) -> int:  # iterative post-order with memo: a DAG of aliases costs its node count
            stack = [(n, False)]
            while stack:
                cur, done = stack.pop()
                if id(cur) in sizes:
                    continue
                if isinstance(cur, yaml.ScalarNode):
                    sizes[id(cur)] = 1
                    continue
                kids = [c for pair in cur.value for c in pair] if isinstance(cur, yaml.MappingNode) else list(cur.value)
                if done:
                    sizes[id(cur)] = min(1 + sum(sizes[id(c)] for c in kids), limit + 1)
                    visiting.discard(id(cur))
                elif id(cur) in visiting:  # reached again from inside itself
                    raise ValueError("front matter is recursive (a YAML alias inside its own anchor)")
                else:
                    visiting.add(id(cur))
                    stack.append((cur, True))
                    stack.extend((c, False) for c in kids if id(c) not in sizes)
            return sizes[id(n)]

        if expanded(node) > limit:
            raise ValueError(f"front matter expands to more than {limit} values (YAML anchors and aliases; "
                             "limits.yaml_values)")
        return loader.construct_document(node)
    finally:
        loader.dispose()
