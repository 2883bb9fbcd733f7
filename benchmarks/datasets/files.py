"""``dataset=files``: a folder of a team's own documents, and queries a person can write by hand.

``dataset.path=DIR`` reads every ``.md``, ``.markdown``, ``.txt``, ``.html``, ``.htm``, ``.pdf`` and ``.docx``
file under DIR, recursively (hidden folders skipped). A document's id is its POSIX path relative to DIR
(``policies/leave.md``); its title is the front matter's ``title``, else its first heading, else the file
name. Metadata comes from YAML front matter (``.md``/``.txt``), PDF document info, HTML ``<meta name=...>``
and an optional ``metadata.jsonl`` sidecar in DIR (``{"id": <doc id>, ...}`` lines; it wins over the
file). ``effective_date``, ``version``, ``supersedes``, ``superseded_by`` and ``deprecated`` are the names
``versions=filter|decay`` reads; ``supersedes: B`` on A also marks B ``superseded_by: A``. A file without an
``effective_date`` gets its modification time as a fallback date (``date_source: mtime``), counted in the
run's ``dataset_mtime_dates``. A file that cannot be read is listed with its reason, skipped and counted
(``dataset_files_skipped``); ``dataset.strict=true`` makes it an error naming the file.

``dataset.queries=FILE`` (``.jsonl`` or ``.csv``), one query per line: ``text`` (required), ``_id``
(generated from the text when absent), ``relevant`` (doc ids; a JSON object ``{id: grade}`` is graded
relevance), ``evidence`` (verbatim strings the context must contain; located in the relevant documents,
whitespace-insensitively, and scored by ``evidence_split_rate`` and ``span_recall_*``), ``label`` (the
failure-mode vocabulary). In a CSV, list fields are a JSON list or ``;``-separated doc ids (evidence: a JSON
list or one string). Queries without ``relevant`` are retrieved, logged and audited but not scored.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from chunkers.types import Document, Query
from retrievers.types import Qrels
from benchmarks.datasets.base import Dataset, apply_limit, check_corpus, kind_of, read_jsonl, require_id, require_text, text_lines
from benchmarks.labels import LABELS  # the failure-mode vocabulary, defined once
from benchmarks.datasets.extract import ROLE, FORMATS, ExtractError, extract, placeholder, plain, render_markdown
from benchmarks.datasets.limits import MB, current as current_limits, size
from benchmarks.datasets.metadata import typed, version_problem
from benchmarks.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SIDECAR = "metadata.jsonl"


def _say(msg: str) -> None:
    print(f"rbench: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- documents
@dataclass
class Listing:
    """Every file under a documents folder, accounted for: to read, skipped (with the reason), or of a
    format that is not read (hidden files and folders, such as ``.git``, are ignored)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


def list_files(root: Path, formats: tuple[str, ...] = FORMATS) -> Listing:
    """The files of ``root`` (recursively, sorted by relative path). Only regular files are read: named
    pipes, sockets and devices are skipped, and so are symbolic links that leave the folder (a link inside
    it is read as its target) and files larger than ``limits.file_mb``."""
    lim = current_limits()
    top = root.resolve()
    out = Listing()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for d in sorted(dirnames):
            if not d.startswith(".") and (here / d).is_symlink():
                out.skipped.append(((here / d).relative_to(root).as_posix(), "a symbolic link to a folder (not followed)"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
        for name in filenames:
            path = here / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or rel == SIDECAR:
                continue
            if not _utf8(rel):  # a name in another encoding: no id, store or report can hold it
                out.skipped.append((os.fsencode(rel).decode("utf-8", "backslashreplace"),
                                    "its name is not UTF-8 (rename the file)"))
                continue
            why = _unreadable(path, top, lim)
            if why:
                out.skipped.append((rel, why))
            elif path.suffix.lower() not in formats:
                out.unsupported.append(rel)
            else:
                out.files.append(path)
    out.files.sort(key=lambda p: p.relative_to(root).as_posix())
    out.skipped.sort()
    out.unsupported.sort()
    return out


def _utf8(name: str) -> bool:
    """Whether a file name read from the file system is valid UTF-8 (Python keeps other bytes as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unreadable(path: Path, top: Path, lim: Any) -> str | None:
    """Why a folder entry is not read (None when it is a regular file within the limits)."""
    import stat

    try:
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if target != top and top not in target.parents:
                return f"a symbolic link to {target}, outside the folder"
        st = os.stat(path)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({kind_of(st.st_mode)})"
    if st.st_size > lim.file_bytes:
        return f"{size(st.st_size)}, larger than {size(lim.file_bytes)} (limits.file_mb)"
    return None


def _resolve_ref(value: Any, doc_id: str, ids: set[str]) -> str | None:
    """A ``supersedes``/``superseded_by`` value as a doc id: as written, or relative to the file's folder."""
    if value in (None, "", False):
        return None
    ref = str(value).strip()
    if ref in ids:
        return ref
    folder = doc_id.rsplit("/", 1)[0] if "/" in doc_id else ""
    candidate = os.path.normpath(f"{folder}/{ref}").replace(os.sep, "/") if folder else ref
    return candidate if candidate in ids else ref


def _shown(items: list[tuple[str, str]]) -> str:
    return "; ".join(f"{d}: {why}" for d, why in items[:10]) + (f"; ... {len(items) - 10} more" if len(items) > 10 else "")


def read_documents(root: Path, *, strict: bool = False, notes: dict[str, int] | None = None) -> list[Document]:
    from tqdm.auto import tqdm

    notes = notes if notes is not None else {}
    lim = current_limits()
    listing = list_files(root)
    files = listing.files
    sidecar = _read_sidecar(root / SIDECAR) if (root / SIDECAR).exists() else {}
    docs: dict[str, dict[str, Any]] = {}
    skipped: list[tuple[str, str]] = list(listing.skipped)
    mtime_dates = 0
    for path in tqdm(files, desc=f"read {root.name}", unit=" files", leave=False, disable=None if len(files) >= 200 else True):
        doc_id = path.relative_to(root).as_posix()
        try:
            got = extract(path)
            if len(got.text) > lim.document_chars:
                raise ExtractError(f"{len(got.text) / MB:.0f} MB of text, more than {size(lim.document_chars)} "
                                   "(limits.document_mb)")
            try:
                meta = typed({**got.metadata, **sidecar.get(doc_id, {})})
            except ValueError as err:
                raise ExtractError(f"metadata {err}") from None
        except ExtractError as err:
            if strict:
                raise DataError(f"{err} (dataset.strict=true; set it to false to skip unreadable files)", path=path) from None
            skipped.append((doc_id, str(err)))
            continue
        declared = meta.pop("title", "")
        title = str(declared if not placeholder(declared, path) else got.heading or path.stem)
        if not meta.get("effective_date"):
            stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).date().isoformat()
            meta.update({"effective_date": stamp, "date_source": "mtime"})
            mtime_dates += 1
        meta["source_path"] = doc_id
        meta["format"] = path.suffix.lower().lstrip(".")
        docs[doc_id] = {"title": title, "text": got.text, "meta": meta, "path": path}
    if strict and listing.skipped:
        rel, why = listing.skipped[0]
        raise DataError(f"{why} (dataset.strict=true; set it to false to skip such files)", path=root / rel)
    unknown = sorted(set(sidecar) - set(docs) - {d for d, _ in skipped})
    if unknown:
        raise DataError(f"{SIDECAR} names {len(unknown)} document(s) not in the folder, e.g. {unknown[0]!r} "
                        "(ids are paths relative to dataset.path, with / separators)", path=root / SIDECAR)
    _link_versions(docs, root)
    total = len(files) + len(listing.skipped) + len(listing.unsupported)
    if skipped:
        _say(f"warning: skipped {len(skipped)} of {total} file(s) under {root}: {_shown(skipped)}")
    if listing.unsupported:
        shown = ", ".join(listing.unsupported[:10]) + (f", ... {len(listing.unsupported) - 10} more" if len(listing.unsupported) > 10 else "")
        _say(f"note: {len(listing.unsupported)} file(s) under {root} are not a format that is read ({shown}); "
             f"read: {', '.join(FORMATS)}")
    if mtime_dates:
        _say(f"note: {mtime_dates} document(s) have no effective_date; their file modification time is used as "
             "their date (metadata date_source=mtime)")
    notes.update({"files_read": len(docs), "files_skipped": len(skipped), "files_unsupported": len(listing.unsupported),
                  "mtime_dates": mtime_dates})
    corpus = [Document(d, v["title"], v["text"], v["meta"]) for d, v in docs.items()]
    if not corpus:
        raise DataError(f"no document could be read: {total} file(s) under the folder, {len(skipped)} skipped, "
                        f"{len(listing.unsupported)} of formats that are not read"
                        + (f" (e.g. {listing.unsupported[0]})" if listing.unsupported else "")
                        + f"; the formats read are {', '.join(FORMATS)}", path=root)
    check_corpus(corpus, root)
    return corpus


def _read_sidecar(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for lineno, obj in read_jsonl(path):
        did = require_id(obj, "id", path=path, line=lineno)
        if did in out:
            raise DataError(f"document {did!r} appears twice", path=path, line=lineno)
        out[did] = plain({k: v for k, v in obj.items() if k != "id"})
    return out


def _link_versions(docs: dict[str, dict[str, Any]], root: Path) -> None:
    """Resolve version references to doc ids and make the links two-way (``supersedes`` -> ``superseded_by``).
    A reference to a document that is not in the folder, a document superseding itself and a cycle of
    versions are errors naming the file."""
    ids = set(docs)
    for did, d in docs.items():
        meta = d["meta"]
        for key in ("supersedes", "superseded_by"):
            ref = _resolve_ref(meta.get(key), did, ids)
            if ref is None:
                continue
            if ref not in ids:
                raise DataError(f"{key}: {meta[key]!r} is not a document in the folder (ids are paths relative to "
                                "dataset.path, or relative to this file's folder)", path=d["path"])
            meta[key] = ref
    problem = version_problem({did: d["meta"] for did, d in docs.items()})
    if problem:
        raise DataError(problem[1], path=root / problem[0])
    for did, d in docs.items():
        old = d["meta"].get("supersedes")
        if old and not docs[old]["meta"].get("superseded_by"):
            docs[old]["meta"]["superseded_by"] = did


# ----------------------------------------------------------------------------------------- queries
#: typographic variants read as their plain form when evidence is located (one character for one, so offsets map)
TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                            "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
                            "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
                            "\u00a0": " ", "\u202f": " ", "\u2007": " ", "\u00ad": " "})


@lru_cache(maxsize=64)
def _ws_index(text: str, deep: bool = False) -> tuple[str, tuple[int, ...]]:
    """``text`` with typographic variants plain (curly quotes, dashes, non-breaking spaces) and each whitespace run
    as one space, and the original offset of every kept character. ``deep``: also Unicode NFKC (ligatures such as
    ``ﬀ`` as ``ff``, full-width forms) and line-end hyphenation joined (``adip-\niscing`` as ``adipiscing``)."""
    out: list[str] = []
    pos: list[int] = []
    prev_space = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if deep and ch in "-\u00ad\u2010" and i and text[i - 1].isalpha():
            j = i + 1
            while j < n and text[j] in " \t":
                j += 1
            if j < n and text[j] == "\n":
                j += 1
                while j < n and text[j] in " \t":
                    j += 1
                if j < n and text[j].islower():
                    i = j  # a word broken at the line's end: joined
                    continue
        piece = unicodedata.normalize("NFKC", ch) if deep and not ch.isascii() else ch
        for c in piece.translate(TYPOGRAPHY):
            if c.isspace():
                if prev_space:
                    continue
                out.append(" ")
                prev_space = True
            else:
                out.append(c)
                prev_space = False
            pos.append(i)
        i += 1
    return "".join(out), tuple(pos)


def _flat_needle(needle: str, deep: bool) -> str:
    if deep:
        needle = unicodedata.normalize("NFKC", needle)
        needle = re.sub(r"(?<=[^\W\d_])[-\u00ad\u2010][ \t]*\n\s*(?=[a-z\u00e0-\u00ff])", "", needle)
    return " ".join(needle.translate(TYPOGRAPHY).split())


def markup_variants(needle: str) -> list[str]:
    """The text a person copied from a document's source, with that source's markup rendered away as the document's
    text was: markdown (emphasis, links ``[text](url)``, code spans; through the same renderer), HTML tags and
    entities, reStructuredText inline markup (````code````, ```text <url>`_``, ``:role:`text```). Only variants that
    differ from the needle."""
    out: list[str] = []
    if re.search(r"[*_`\[\]<>&:|]", needle):
        rendered = " ".join(render_markdown(needle).replace("#", " ").split()) if re.search(r"[*_`\[]", needle) else ""
        rst = ROLE.sub(lambda m: m.group(1) or "", needle)  # :role:`text <target>`, as the RST reader reads it
        rst = re.sub(r"`([^`<]+?)\s*<[^`>]+>`__?", r"\1", rst)  # `text <url>`_
        rst = re.sub(r"``([^`]+)``", r"\1", rst)
        rst = re.sub(r"\*\*([^*]+)\*\*|\*([^*]+)\*", lambda m: m.group(1) or m.group(2), rst)
        rst = re.sub(r"`([^`]+)`_?", r"\1", rst)
        html = ""
        if re.search(r"<[A-Za-z/!]|&\w+;|&#", needle):
            from bs4 import BeautifulSoup

            html = BeautifulSoup(needle, "html.parser").get_text()
        for v in (rendered, rst, html):
            v = " ".join(v.split())
            if v and v != " ".join(needle.split()) and v not in out:
                out.append(v)
    return out


def locate(text: str, needle: str) -> tuple[int, int] | None:
    """Where ``needle`` occurs in ``text``: verbatim; else ignoring differences in whitespace and typography (curly vs
    straight quotes, dashes, non-breaking spaces); else after the normalisation extraction applies (Unicode NFKC, so
    ligatures match; line-end hyphenation joined) and with the markup of the needle's source rendered away
    (:func:`markup_variants`: evidence copied from a markdown, HTML or reStructuredText file). The offsets point into
    the original ``text``."""
    needle = needle.strip()
    if not needle:
        return None
    at = text.find(needle)
    if at >= 0:
        return at, at + len(needle)
    for deep in (False, True):
        flat, pos = _ws_index(text, deep)
        for candidate in [needle, *(markup_variants(needle) if deep else ())]:
            want = _flat_needle(candidate, deep)
            at = flat.find(want) if want else -1
            if at >= 0:
                return pos[at], pos[at + len(want) - 1] + 1
    return None


def closest_passage(text: str, needle: str) -> str:
    """The passage of ``text`` most like ``needle`` (around their longest common run, as long as the needle), for an
    error message: a typo and an extraction loss look different there."""
    import difflib

    flat, _ = _ws_index(text, True)
    want = _flat_needle(needle, True)
    if not flat or not want:
        return ""
    m = difflib.SequenceMatcher(None, flat, want, autojunk=False).find_longest_match(0, len(flat), 0, len(want))
    start = max(0, m.a - m.b)
    window = flat[start:start + len(want) + 10]
    return ("…" if start else "") + window + ("…" if start + len(want) + 10 < len(flat) else "")


def _list_field(value: Any, key: str, *, path: Path, line: int | str, csv_row: bool) -> list[Any] | dict[str, Any]:
    if value is None or value == "":
        return []
    if csv_row and isinstance(value, str):
        s = value.strip()
        if s.startswith(("[", "{")):
            try:
                value = json.loads(s)
            except json.JSONDecodeError as err:
                raise DataError(f"field {key!r}: malformed JSON ({err.msg})", path=path, line=line) from None
        elif key == "relevant":
            return [p.strip() for p in re.split(r"[;|]", s) if p.strip()]
        else:
            return [s]
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, dict)):
        return value
    raise DataError(f"field {key!r} must be a list, got {type(value).__name__}", path=path, line=line)


def _records(path: Path) -> Any:
    if path.suffix.lower() == ".csv":
        import csv

        lines = [text for _, text in text_lines(path)]
        reader = csv.DictReader(lines)
        if not reader.fieldnames or "text" not in [f.strip() for f in reader.fieldnames]:
            raise DataError(f"a queries CSV needs a header with a 'text' column (got {reader.fieldnames})", path=path, line=1)
        for row in reader:
            yield reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}, True
    else:
        for lineno, obj in read_jsonl(path):
            yield lineno, obj, False


def _overlap(a: str, b: str) -> int:
    import difflib

    return difflib.SequenceMatcher(None, a.lower(), b.lower(), autojunk=False).find_longest_match(0, len(a), 0, len(b)).size


def read_queries(path: Path, corpus: list[Document], *, notes: dict[str, int] | None = None) -> tuple[list[Query], Qrels]:
    """Hand-written queries and judgments (see the module docstring). Every error names the file and line."""
    import difflib
    import hashlib

    notes = notes if notes is not None else {}
    if not path.exists():
        raise DataError("dataset.queries: file not found", path=path)
    if path.suffix.lower() not in (".jsonl", ".csv", ".gz"):
        raise DataError("dataset.queries must be a .jsonl or .csv file", path=path)
    docs = {d.id: d for d in corpus}
    queries: list[Query] = []
    qrels: Qrels = {}
    seen: dict[str, int | str] = {}
    spans_total = 0
    for line, obj, csv_row in _records(path):
        text = require_text(obj, "text", path=path, line=line).strip()
        if not text:
            raise DataError("field 'text' is empty", path=path, line=line)
        qid = str(obj.get("_id") or "").strip() or "q-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
        if qid in seen:
            raise DataError(f"query id {qid!r} appears twice (first on line {seen[qid]})"
                            + ("; the same text twice without an _id" if not obj.get("_id") else ""), path=path, line=line)
        seen[qid] = line
        relevant = _list_field(obj.get("relevant"), "relevant", path=path, line=line, csv_row=csv_row)
        grades = relevant if isinstance(relevant, dict) else {str(d): 1 for d in relevant}
        for did, grade in grades.items():
            if did not in docs:
                close = difflib.get_close_matches(did, list(docs), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else " (ids are paths relative to dataset.path)"
                raise DataError(f"relevant document {did!r} is not in the corpus{hint}", path=path, line=line)
            if isinstance(grade, bool) or not isinstance(grade, int):
                raise DataError(f"relevance grade for {did!r} must be an integer, got {grade!r}", path=path, line=line)
        meta: dict[str, Any] = {k: v for k, v in obj.items() if k not in ("_id", "text", "relevant", "evidence", "label")}
        label = (obj.get("label") or "").strip() if isinstance(obj.get("label"), str) else obj.get("label")
        if label:
            if label not in LABELS:
                raise DataError(f"label {label!r} is not in the failure-mode vocabulary ({'|'.join(LABELS)})", path=path, line=line)
            meta["label"] = label
        evidence = _list_field(obj.get("evidence"), "evidence", path=path, line=line, csv_row=csv_row)
        if evidence and not grades:
            raise DataError("evidence needs relevant: the documents the evidence strings are in", path=path, line=line)
        spans = []
        for ev in evidence if isinstance(evidence, list) else []:
            if not isinstance(ev, str) or not ev.strip():
                raise DataError(f"evidence entries must be non-empty strings, got {ev!r}", path=path, line=line)
            for did in (d for d, g in grades.items() if g > 0):
                at = locate(docs[did].text, ev)
                if at is not None:
                    spans.append({"doc_id": did, "start": at[0], "end": at[1]})
                    break
            else:
                near = [(d, closest_passage(docs[d].text, ev)) for d in grades if d in docs]
                best = max(near, key=lambda x: _overlap(x[1], ev), default=None)
                raise DataError(f"evidence {ev[:80]!r} is in none of its relevant documents ({', '.join(grades)})"
                                + (f"; the closest passage, in {best[0]}: {best[1][:160]!r}" if best and best[1] else "")
                                + " — a typo, or text the document's extraction lost or changed (compare them)",
                                path=path, line=line)
        if spans:
            meta["evidence"] = spans
            spans_total += len(spans)
        queries.append(Query(qid, text, meta))
        if grades:
            qrels[qid] = {d: int(g) for d, g in grades.items()}
    if not queries:
        raise DataError("no queries in the file", path=path)
    unjudged = sum(1 for q in queries if q.id not in qrels)
    notes.update({"queries_unjudged": unjudged, "evidence_spans": spans_total})
    if unjudged:
        _say(f"note: {unjudged} of {len(queries)} queries have no 'relevant' documents: they are retrieved, logged "
             "and audited, but not scored")
    return queries, qrels


class FilesLoader:
    """``dataset=files``: documents from a folder, queries from a hand-written file."""

    def __init__(self, *, path: str | None = None, queries: str | None = None, name: str | None = None,
                 strict: bool = False, limit: int | None = None, split: str = "test", tune_split: str | None = None,
                 data_dir: str = ".") -> None:
        if not path:
            raise ConfigError("dataset.path: give the folder of documents (dataset=files dataset.path=DIR)")
        if tune_split:
            raise ConfigError("dataset.tune_split is not used by dataset=files (one queries file)")
        self.root = Path(str(path)).expanduser()
        self.queries = Path(str(queries)).expanduser() if queries else None
        self.name = name or self.root.resolve().name
        self.strict, self.limit, self.split = bool(strict), limit, split

    def dataset_name(self) -> str:
        """The name runs are labelled with: ``dataset.name``, else the folder's name."""
        return self.name

    def load(self) -> Dataset:
        if not self.root.is_dir():
            raise DataError("dataset.path: not a folder", path=self.root)
        if self.queries is None:
            raise ConfigError("dataset.queries: give a .jsonl or .csv file of queries (one per line, 'text' required; "
                              "rbench-generate --corpus DIR writes one)")
        notes: dict[str, int] = {}
        corpus = read_documents(self.root, strict=self.strict, notes=notes)
        queries, qrels = read_queries(self.queries, corpus, notes=notes)
        queries, qrels = apply_limit(queries, qrels, self.limit)
        return Dataset(name=self.name, corpus=corpus, queries=queries, qrels=qrels, split=self.split,
                       source=f"files:{self.root.resolve().as_posix()}", notes=notes)
