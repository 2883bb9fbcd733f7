"""The loaded dataset every experiment consumes, and helpers shared by the format readers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

from chunkers.types import Document, Query
from retrievers.types import Qrels
from retrievers.infrastructure.fingerprint import StreamingFingerprint
from benchmarks.errors import DataError
from benchmarks.datasets.limits import current as current_limits, depth_message, json_too_deep, size

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """A corpus, the queries of one split with their qrels, and (optionally) a tuning split."""

    name: str
    corpus: list[Document]
    queries: list[Query]
    qrels: Qrels
    split: str = "test"
    tune_queries: list[Query] = field(default_factory=list)
    tune_qrels: Qrels = field(default_factory=dict)
    tune_split: str | None = None
    source: str = ""
    #: Counts a user should see: queries not run (no judgments), qrels dropped (strict=false), ...
    notes: dict[str, int] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False)

    def fingerprint(self) -> str:
        """Content hash of everything evaluation depends on (documents, queries, qrels, splits)."""
        if self._fingerprint is None:
            fp = StreamingFingerprint()
            for d in self.corpus:
                fp.update([d.id, d.title, d.text, dict(d.metadata)])
            for split, queries, qrels in (
                (self.split, self.queries, self.qrels),
                (self.tune_split, self.tune_queries, self.tune_qrels),
            ):
                fp.update(split)
                for q in queries:
                    fp.update([q.id, q.text, dict(q.metadata)])
                fp.update(qrels)
            self._fingerprint = fp.hexdigest()
        return self._fingerprint


@runtime_checkable
class Loader(Protocol):
    """What a ``dataset`` group's ``_target_`` builds: a name known before anything is read (runs, failed ones
    too, are labelled with it) and the dataset itself, whose ``name`` is that name."""

    def dataset_name(self) -> str: ...

    def load(self) -> Dataset: ...


def data_file(path: Path) -> Path:
    """``path``, or ``path.gz`` when only the gzipped file exists (BEIR users have ``corpus.jsonl.gz``)."""
    path = Path(path)
    if not path.exists() and path.suffix != ".gz":
        gz = path.with_name(path.name + ".gz")
        if gz.exists():
            return gz
    return path


def regular_file(path: Path, what: str = "file") -> Path:
    """``path`` when it is a regular file (after following links); a named pipe, device or folder is a
    DataError (reading a pipe blocks forever, a device never ends)."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{what} not found", path=path) from None
    except OSError as err:
        raise DataError(f"cannot be read ({type(err).__name__}: {err.strerror or err})", path=path) from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"not a regular file ({kind_of(st.st_mode)}); give a file", path=path)
    return Path(path)


def kind_of(mode: int) -> str:
    import stat

    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def text_lines(path: Path, max_line: int | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 file (a leading BOM is dropped; ``.gz`` is read transparently).
    A line that is not UTF-8 is a DataError naming the file and line. Reading is bounded
    (:mod:`benchmarks.datasets.limits`): a line longer than ``limits.line_mb`` or a file (decompressed)
    larger than ``limits.data_file_gb`` is an error, found before the line is held in memory."""
    import gzip

    lim = current_limits()
    regular_file(path)
    opener = gzip.open if Path(path).suffix == ".gz" else open
    limit_key = "limits.line_mb" if max_line is None else "limits.json_file_mb"  # a .json read whole: its own bound
    max_line, total = (lim.line_bytes if max_line is None else max_line), 0
    try:
        with opener(path, "rb") as fh:
            lineno = 0
            while True:
                raw = fh.readline(max_line + 2)
                if not raw:
                    break
                lineno += 1
                total += len(raw)
                if len(raw) - raw.endswith(b"\n") > max_line:
                    if limit_key == "limits.json_file_mb":
                        raise DataError(f"a .json file larger than {size(max_line)} (limits.json_file_mb; JSON lines "
                                        "are read a line at a time)", path=path)
                    raise DataError(f"line longer than {size(max_line)} (limits.line_mb; is this a data file of "
                                    "one record per line?)", path=path, line=lineno)
                if total > lim.data_file_bytes:
                    raise DataError(f"more than {lim.data_file_gb:g} GB of text{' once decompressed' if opener is gzip.open else ''} "
                                    "(limits.data_file_gb)", path=path, line=lineno)
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                                    "save the file as UTF-8", path=path, line=lineno) from None
    except (OSError, EOFError) as err:  # a truncated or corrupt .gz
        if isinstance(err, FileNotFoundError):
            raise DataError("file not found", path=path) from None
        raise DataError(f"cannot be read ({type(err).__name__}: {err})", path=path) from None


_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate (``\\ud800``: half of a UTF-16 pair, not a character) in a parsed JSON value, as its
    escape, or None. JSON lets one be written as an escape; no UTF-8 file or MLflow store can hold it."""
    if isinstance(value, str):
        m = _SURROGATE.search(value)
        return f"\\u{ord(m.group(0)):04x}" if m else None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        return next((s for s in map(lone_surrogate, value) if s), None)
    return None


def loads(text: str, *, path: Path, line: int | str) -> Any:
    """``json.loads`` with the nesting depth checked first (``limits.json_depth``) and no lone surrogate let through
    (a JSON escape such as ``\\ud800`` that is no character); errors name file:line."""
    if json_too_deep(text):
        raise DataError(depth_message(), path=path, line=line)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        where = line if isinstance(line, str) or err.lineno == 1 else err.lineno
        raise DataError(f"malformed JSON ({err.msg} at column {err.colno})", path=path, line=where) from None
    except RecursionError:  # a limit raised past what the interpreter's stack allows
        raise DataError(depth_message(), path=path, line=line) from None
    if _SURROGATE_ESCAPE.search(text):  # only a line with such an escape can hold one
        bad = lone_surrogate(value)
        if bad:
            raise DataError(f"a string holds {bad}, half of a UTF-16 surrogate pair and no character: not valid "
                            "Unicode text (write the character itself, or its full pair)", path=path, line=line)
    return value


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)``; blank lines are skipped, malformed ones raise DataError."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        obj = loads(line, path=path, line=lineno)
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno)
        yield lineno, obj


def read_json_records(path: Path) -> Iterator[tuple[int | str, dict[str, Any]]]:
    """A ``.json`` list of objects or a ``.jsonl`` file (either may be gzipped); yields ``(where, object)``:
    the line number for JSON lines, ``"record N"`` (counted from one) for a JSON array. A ``.json`` file is
    read whole, up to ``limits.json_file_mb``."""
    path = Path(path)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from read_jsonl(path)
        return
    lim = current_limits()
    parts, total = [], 0
    for _, line in text_lines(path, max_line=lim.json_file_bytes):  # read whole: one line may be the whole file
        total += len(line)
        if total > lim.json_file_bytes:
            raise DataError(f"a .json file larger than {size(lim.json_file_bytes)} (limits.json_file_mb; JSON lines "
                            "are read a line at a time)", path=path)
        parts.append(line)
    text = "".join(parts)
    del parts
    if json_too_deep(text):
        raise DataError(depth_message(), path=path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"malformed JSON ({err.msg} at column {err.colno})", path=path, line=err.lineno) from None
    except RecursionError:
        raise DataError(depth_message(), path=path) from None
    if _SURROGATE_ESCAPE.search(text) and lone_surrogate(data):
        raise DataError(f"a string holds {lone_surrogate(data)}, half of a UTF-16 surrogate pair and no character: not "
                        "valid Unicode text (write the character itself, or its full pair)", path=path)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError("expected a JSON list of records", path=path)
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=f"record {i + 1}")
        yield f"record {i + 1}", obj


def read_csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a CSV file with a header (Ragas' ``to_csv()``, DeepEval's ``save_as("csv")``, a references file),
    read through the bounded line reader (a BOM dropped, every line within ``limits.line_mb``); ``where`` is the
    row's first line (a quoted cell may span lines)."""
    import csv

    lim = current_limits()
    csv.field_size_limit(max(csv.field_size_limit(), lim.line_bytes))
    reader = csv.DictReader(text for _, text in text_lines(path))
    start = 2
    try:
        for row in reader:
            yield start, {str(k).strip(): v for k, v in row.items() if k is not None}
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"malformed CSV ({err})", path=path, line=reader.line_num) from None


def require(obj: dict[str, Any], key: str, *, path: Path, line: int | str) -> Any:
    if key not in obj:
        raise DataError(f"missing field {key!r} (fields present: {', '.join(sorted(obj)) or 'none'})", path=path, line=line)
    return obj[key]


def require_id(obj: dict[str, Any], key: str, *, path: Path, line: int | str) -> str:
    """An id field: a non-empty string (read without leading and trailing spaces, in every file: corpus,
    queries, qrels) or an integer (kept as its decimal string); null, empty, boolean, float or structured
    values are errors."""
    value = require(obj, key, path=path, line=line)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        shown = "null" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"
        raise DataError(f"field {key!r} must be a non-empty string or an integer, got {shown}", path=path, line=line)
    text = str(value).strip()
    if not text:
        raise DataError(f"field {key!r} is empty", path=path, line=line)
    return text


def require_text(obj: dict[str, Any], key: str, *, path: Path, line: int | str, optional: bool = False) -> str:
    """A text field: a string (may be empty); null or non-string values are errors (``optional``: a missing
    or null field is the empty string)."""
    if optional and obj.get(key) is None:
        return ""
    value = require(obj, key, path=path, line=line)
    if not isinstance(value, str):
        shown = "null" if value is None else type(value).__name__
        raise DataError(f"field {key!r} must be a string, got {shown}", path=path, line=line)
    return value


_SLUG = re.compile(r"[^0-9A-Za-z]+")


def paragraph_id(title: str, text: str) -> str:
    """Deterministic, whitespace-free id for a native-format paragraph: title slug + content hash.

    Two different paragraphs with the same title get different ids; the same paragraph seen in two
    questions gets the same id (so it is pooled once).
    """
    slug = _SLUG.sub("_", title).strip("_")[:60] or "untitled"
    digest = hashlib.sha1(f"{title}\n{text}".encode("utf-8")).hexdigest()[:10]
    return f"{slug}_{digest}"


def apply_limit(queries: list[Query], qrels: Qrels, limit: int | None) -> tuple[list[Query], Qrels]:
    if limit is None:
        return queries, qrels
    if int(limit) < 1:
        raise DataError(f"dataset.limit must be a positive integer or null, got {limit}")
    queries = queries[: int(limit)]
    keep = {q.id for q in queries}
    return queries, {qid: rel for qid, rel in qrels.items() if qid in keep}


def check_corpus(corpus: list[Document], path: Path | str) -> None:
    if not corpus:
        raise DataError("empty corpus: no documents to index", path=path)


def _question_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def attach_decompositions(queries: list[Query], path: str | Path | None) -> tuple[list[Query], int]:
    """Attach BREAK QDMR decompositions (``question_id, question_text, decomposition``; steps separated by
    ``;``, each ``return ...``, referring back with ``#k``) to the queries they belong to, as
    ``metadata["qdmr"]`` (list of step texts). A row matches a query when its ``question_id`` ends with
    ``_<query id>`` (BREAK writes ``HOTPOT_dev_<id>``) or its question text equals the query's (ignoring
    case and punctuation). Returns the queries (new objects where one was attached) and how many got one."""
    if not path:
        return queries, 0
    import csv

    path = Path(path)
    if not path.exists():
        raise DataError("dataset.decompositions: file not found", path=path)
    by_id: dict[str, list[str]] = {}
    by_text: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"question_id", "question_text", "decomposition"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"BREAK QDMR file lacks column(s) {sorted(missing)}", path=path, line=1)
        for row in reader:
            steps = [re.sub(r"\s+", " ", re.sub(r"^return\s+", "", s.strip())) for s in (row["decomposition"] or "").split(";")]
            steps = [s for s in steps if s]
            if not steps:
                raise DataError("empty decomposition", path=path, line=reader.line_num)
            by_id[row["question_id"].rsplit("_", 1)[-1]] = steps
            by_text[_question_key(row["question_text"] or "")] = steps
    out, n = [], 0
    for q in queries:
        steps = by_id.get(q.id) or by_text.get(_question_key(q.text))
        if steps:
            q = Query(q.id, q.text, {**q.metadata, "qdmr": steps})
            n += 1
        out.append(q)
    return out, n

