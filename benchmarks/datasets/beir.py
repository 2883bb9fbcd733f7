"""BEIR-format folders: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

The project's own streaming, validating reader (beir's GenericDataLoader drops ``metadata``, silently
overwrites duplicate ids and raises bare KeyErrors). The beir package is used for what it is good at:
downloading and unzipping the official dataset zips when a named dataset is not on disk.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from chunkers.types import Document, Query
from retrievers.types import Qrels
from benchmarks.datasets.base import (Dataset, apply_limit, attach_decompositions, check_corpus, data_file, read_jsonl,
                                      require_id, require_text, text_lines)
from benchmarks.datasets.limits import MB, current as current_limits, size
from benchmarks.datasets.metadata import VERSION_KEYS, typed, version_problem
from benchmarks.errors import DataError
from retrievers.infrastructure.extras import installed
from benchmarks.paths import DATA_DIR
from retrievers.infrastructure.hub import go_offline_if_unreachable

log = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
_RESERVED = {"_id", "title", "text", "metadata"}


def _metadata(obj: dict[str, Any], *, path: Path, line: int | str) -> dict[str, Any]:
    """A record's metadata: its ``metadata`` object and every other non-reserved field, with the version
    fields typed (:mod:`benchmarks.datasets.metadata`)."""
    nested = obj.get("metadata")
    if nested is not None and not isinstance(nested, dict):
        raise DataError(f"field 'metadata' must be a JSON object, got {type(nested).__name__}", path=path, line=line)
    meta = dict(nested or {})
    meta.update({k: v for k, v in obj.items() if k not in _RESERVED})
    if any(k in meta for k in VERSION_KEYS):
        try:
            meta = typed(meta)
        except ValueError as err:
            raise DataError(f"metadata {err}", path=path, line=line) from None
    return meta


def _stripped(raw: Any, did: str, stripped: list[int]) -> None:
    if isinstance(raw, str) and raw != did:
        stripped[0] += 1


def read_corpus(path: Path, notes: dict[str, int] | None = None) -> list[Document]:
    """The documents of a BEIR ``corpus.jsonl``. Ids are read without surrounding spaces, as in the queries
    and qrels (two ids equal after that are duplicates); a document longer than ``limits.document_mb`` is an
    error; version links (``supersedes``, ``superseded_by``) must name documents of the corpus, without
    cycles."""
    path = data_file(path)
    if not path.exists():
        raise DataError("corpus file not found (also looked for corpus.jsonl.gz)", path=path)
    lim = current_limits()
    docs: list[Document] = []
    seen: dict[str, int] = {}
    stripped = [0]
    records = tqdm(read_jsonl(path), desc=f"read {path.parent.name}/corpus", unit=" docs", leave=False, disable=None)
    for lineno, obj in records:
        did = require_id(obj, "_id", path=path, line=lineno)
        _stripped(obj["_id"], did, stripped)
        text = require_text(obj, "text", path=path, line=lineno)
        title = require_text(obj, "title", path=path, line=lineno, optional=True)
        if len(text) + len(title) > lim.document_chars:
            raise DataError(f"a document of {(len(text) + len(title)) / MB:.0f} MB, more than {size(lim.document_chars)} "
                            "(limits.document_mb)", path=path, line=lineno)
        if did in seen:
            first_line, first_raw = seen[did]
            why = "" if first_raw == obj["_id"] else "; ids are compared without surrounding spaces"
            raise DataError(f"duplicate doc id {did!r} (first on line {first_line}{why})", path=path, line=lineno)
        seen[did] = (lineno, obj["_id"])
        docs.append(Document(did, title, text, _metadata(obj, path=path, line=lineno)))
    check_corpus(docs, path)
    versioned = {d.id: d.metadata for d in docs if d.metadata.get("supersedes") or d.metadata.get("superseded_by")}
    if versioned:
        problem = version_problem({**{d.id: {} for d in docs}, **versioned})
        if problem:
            raise DataError(problem[1], path=path, line=seen[problem[0]][0])
    _note_stripped(stripped[0], path, notes)
    return docs


def _note_stripped(n: int, path: Path, notes: dict[str, int] | None) -> None:
    if n:
        log.warning("%s: %d id(s) have leading or trailing spaces; they are read without them (as in qrels)", path, n)
        if notes is not None:
            notes["ids_stripped"] = notes.get("ids_stripped", 0) + n


def read_queries(path: Path, notes: dict[str, int] | None = None) -> dict[str, Query]:
    path = data_file(path)
    if not path.exists():
        raise DataError("queries file not found (also looked for queries.jsonl.gz)", path=path)
    queries: dict[str, Query] = {}
    lines: dict[str, int] = {}
    stripped = [0]
    for lineno, obj in read_jsonl(path):
        qid = require_id(obj, "_id", path=path, line=lineno)
        _stripped(obj["_id"], qid, stripped)
        text = require_text(obj, "text", path=path, line=lineno)
        if qid in queries:
            raise DataError(f"duplicate query id {qid!r} (first on line {lines[qid]})", path=path, line=lineno)
        lines[qid] = lineno
        queries[qid] = Query(qid, str(text), _metadata(obj, path=path, line=lineno))
    _note_stripped(stripped[0], path, notes)
    return queries


def read_qrels(path: Path) -> tuple[Qrels, dict[tuple[str, str], int]]:
    """BEIR tsv (``query-id corpus-id score``, optional header) or TREC qrels (``qid 0 docid rel``).

    Scores are integers (``2`` or ``2.0``); a fractional, infinite or NaN score is an error, and so is a
    (query, document) pair judged twice with different scores (both lines named).
    Returns the qrels and the line of each pair (for error messages downstream).
    """
    import math

    path = data_file(path)
    qrels: Qrels = {}
    where: dict[tuple[str, str], int] = {}
    layout: tuple[bool, int, int] | None = None  # (tab-separated, columns, first line): the first line decides
    for lineno, line in text_lines(path):
        line = line.rstrip("\n\r")
        if not line.strip():
            continue
        if layout is None:
            tabs = "\t" in line
            n = len(line.split("\t") if tabs else line.split())
            if n not in (3, 4):
                raise DataError(f"expected 3 tab-separated columns (query-id, corpus-id, score) or 4 TREC columns "
                                f"(query-id, 0, doc-id, relevance), got {n}", path=path, line=lineno)
            layout = (tabs, n, lineno)
        tabs, n, first = layout
        parts = line.split("\t") if tabs else line.split()
        if len(parts) != n:
            what = "BEIR qrels: query-id, corpus-id, score" if n == 3 else "TREC qrels: query-id, 0, doc-id, relevance"
            raise DataError(f"expected {n} {'tab-separated ' if tabs else ''}columns like line {first} ({what}), "
                            f"got {len(parts)}" + (" (a tab inside an id?)" if tabs and len(parts) > n else ""),
                            path=path, line=lineno)
        if n == 4:
            qid, _, did, rel = parts
        else:
            qid, did, rel = parts
        try:
            value = float(rel)
        except ValueError:
            if lineno == 1:  # header line
                continue
            raise DataError(f"relevance score {rel!r} is not a number", path=path, line=lineno) from None
        if n == 4 and not (parts[1].strip().lstrip("-").isdigit() or parts[1].strip().upper() == "Q0"):
            raise DataError(f"column 2 of a TREC qrels line is the iteration (0 or Q0), got {parts[1]!r}: is this a "
                            "BEIR qrels line (query-id, corpus-id, score) with a tab inside an id?", path=path, line=lineno)
        if not math.isfinite(value) or not value.is_integer():
            raise DataError(f"relevance score {rel!r} is not an integer (graded relevance: 0, 1, 2, ...)",
                            path=path, line=lineno)
        qid, did, score = qid.strip(), did.strip(), int(value)
        if not qid or not did:
            raise DataError("empty query id or doc id", path=path, line=lineno)
        if (qid, did) in where and qrels[qid][did] != score:
            raise DataError(f"query {qid!r} judges doc {did!r} {score} here and {qrels[qid][did]} on line "
                            f"{where[(qid, did)]}: one judgment per pair", path=path, line=lineno)
        qrels.setdefault(qid, {})[did] = score
        where.setdefault((qid, did), lineno)
    return qrels, where


def validate_qrels(
    qrels: Qrels, where: dict[tuple[str, str], int], *, path: Path, doc_ids: set[str], query_ids: set[str],
    strict: bool, notes: dict[str, int], queries_path: Path, corpus_path: Path,
) -> Qrels:
    """Unknown query or doc ids: an error naming the line (strict), else warn, count and drop."""
    out: Qrels = {}
    dropped_docs = dropped_queries = 0
    for qid, rels in qrels.items():
        if qid not in query_ids:
            if strict:
                line = min(where[(qid, d)] for d in rels)
                raise DataError(
                    f"query id {qid!r} is not in {queries_path} (set dataset.strict=false to drop such judgments)",
                    path=path, line=line,
                )
            dropped_queries += 1
            continue
        kept = {}
        for did, score in rels.items():
            if did not in doc_ids:
                if strict:
                    raise DataError(
                        f"doc id {did!r} is not in {corpus_path} (set dataset.strict=false to drop such judgments)",
                        path=path, line=where[(qid, did)],
                    )
                dropped_docs += 1
                continue
            kept[did] = score
        if kept:
            out[qid] = kept
    if dropped_docs or dropped_queries:
        log.warning(
            "%s: dropped %d judgments naming unknown doc ids and %d queries not in %s (dataset.strict=false)",
            path, dropped_docs, dropped_queries, queries_path.name,
        )
        notes["qrels_dropped_unknown_doc"] = dropped_docs
        notes["qrels_dropped_unknown_query"] = dropped_queries
    return out


def corpus_file(folder: str | Path) -> Path:
    """A BEIR folder's corpus file: ``corpus.jsonl``, or ``corpus.jsonl.gz`` when only that exists."""
    return data_file(Path(folder) / "corpus.jsonl")


def is_beir_folder(folder: str | Path) -> bool:
    """The one rule of what a BEIR folder is (sweep presets, ``beir_full``, ``--corpus``): it holds a corpus file,
    ``corpus.jsonl`` or ``corpus.jsonl.gz``. Any entry counts, not only a regular file: a named pipe there is the
    reader's error to name."""
    return corpus_file(folder).exists()


@dataclass(frozen=True)
class BeirFiles:
    """Where one BEIR collection's files are: ``corpus.jsonl``, ``queries.jsonl`` (each also ``.gz``) and a
    folder of ``<split>.tsv`` qrels. A folder on disk has them as ``<folder>/{corpus,queries}.jsonl`` and
    ``<folder>/qrels/``; the Hugging Face hub as ``BeIR/<name>`` and ``BeIR/<name>-qrels``. Both are read by
    the same readers, with the same checks."""

    corpus: Path
    queries: Path
    qrels_dir: Path

    @classmethod
    def in_folder(cls, folder: Path) -> "BeirFiles":
        return cls(folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels")


def load_split(files: BeirFiles, split: str, queries: dict[str, Query], doc_ids: set[str], *, strict: bool,
               notes: dict[str, int]) -> tuple[list[Query], Qrels]:
    qrels_dir = files.qrels_dir
    path = data_file(qrels_dir / f"{split}.tsv")
    if not path.exists():
        available = sorted({p.name.split(".")[0] for p in qrels_dir.glob("*.tsv*")}) if qrels_dir.is_dir() else []
        raise DataError(
            f"no qrels for split {split!r}; dataset.split must be one of: {', '.join(available) or '(none found)'}",
            path=path,
        )
    raw, where = read_qrels(path)
    qrels = validate_qrels(
        raw, where, path=path, doc_ids=doc_ids, query_ids=set(queries), strict=strict, notes=notes,
        queries_path=data_file(files.queries), corpus_path=data_file(files.corpus),
    )
    # queries.jsonl order, only those judged in this split
    return [q for qid, q in queries.items() if qid in qrels], qrels


def download(name: str, data_dir: Path, url_template: str = BEIR_URL) -> Path:
    """Download and unzip an official BEIR dataset into ``data_dir/beir/<name>`` atomically."""
    target_root = data_dir / "beir"
    url = url_template.format(name=name)
    try:
        target_root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=target_root, prefix=".write-test-")
        probe.close()
    except OSError as err:
        raise DataError(
            f"dataset {name!r} is not on disk and cannot be downloaded there: {target_root} is not writable "
            f"({err.strerror}). Set RBENCH_DATA_DIR (data_dir) to a writable folder, or pass dataset.path.",
        ) from None

    if not installed("beir"):
        raise DataError(f"dataset {name!r} is not under {target_root}, and downloading it needs the beir package: "
                        f"pip install 'retrieval-bench[beir]' — or download {url}, unzip it there, or pass "
                        "dataset.path=<folder>")
    from beir import util as beir_util
    import requests

    with tempfile.TemporaryDirectory(dir=target_root, prefix=f".{name}-download-") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        try:
            requests.head(url, timeout=10, allow_redirects=True).raise_for_status()
            beir_util.download_url(url, str(archive))
        except (requests.RequestException, OSError) as err:
            raise DataError(
                f"dataset {name!r} is not under {target_root} and downloading {url} failed "
                f"({type(err).__name__}: {err}). If this machine is offline, put a BEIR folder there or pass "
                f"dataset.path=<folder>; check dataset.name for typos."
            ) from None
        check_archive(archive, name, url)
        extracted = Path(tmp) / "extracted"
        safe_extract(archive, extracted, url)
        unzipped = extracted / name
        if not unzipped.is_dir():
            found = [p for p in extracted.iterdir() if p.is_dir()]
            if len(found) != 1:
                raise DataError(f"the archive at {url} does not contain a folder named {name!r}")
            unzipped = found[0]
        final = target_root / name
        os.replace(unzipped, final)
    return final


def known_beir_names() -> list[str]:
    """The collections the BEIR mirror publishes (those ``benchmarks/data/beir_md5.json`` lists)."""
    table = json.loads((DATA_DIR / "beir_md5.json").read_text(encoding="utf-8"))
    return sorted(k for k in table if not k.startswith("_"))


def unknown_name_message(name: str, root: Path) -> str:
    """``dataset.name`` names neither a folder on disk nor a BEIR collection: the closest of both, before any
    download is tried."""
    import difflib

    local = sorted(p.name for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    known = known_beir_names()
    close = difflib.get_close_matches(name, list(dict.fromkeys(local + known)), n=3, cutoff=0.6)
    return (f"dataset.name: {name!r} is neither a folder under {root} nor a BEIR collection"
            + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "")
            + (f" On disk: {', '.join(local)}." if local else "") + f" BEIR: {', '.join(known)}.")


def published_md5(name: str) -> str | None:
    """The MD5 BEIR publishes for ``<name>.zip`` (``benchmarks/data/beir_md5.json``), if any."""

    table = json.loads((DATA_DIR / "beir_md5.json").read_text(encoding="utf-8"))
    return table.get(name)


def check_archive(archive: Path, name: str, url: str) -> None:
    """A downloaded zip must match BEIR's published MD5 where one exists (a truncated download, a changed or
    tampered mirror); a mismatch is an error naming the file, and the caller's temporary folder goes with it."""
    import hashlib

    expected = published_md5(name)
    if expected is None:
        log.warning("no published checksum for %s: its download is not verified", name)
        return
    h = hashlib.md5()  # noqa: S324 - the checksum BEIR publishes, an integrity check, not a security primitive
    with open(archive, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise DataError(f"the download of {url} does not match BEIR's published MD5 for {name} ({h.hexdigest()} != "
                        f"{expected}): it is not used, and nothing is kept", path=f"{name}.zip")


def safe_extract(archive: Path, dest: Path, url: str, *, max_ratio: int = 100) -> None:
    """Extract a zip with every member inside ``dest``: absolute names, ``..``, links and devices are refused, and
    the bytes written may not exceed ``max_ratio`` times the archive's size (a zip bomb), whatever the
    members' headers claim."""
    import shutil
    import stat
    import zipfile

    budget = max(archive.stat().st_size * max_ratio, 1 << 20)
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DataError(f"the download of {url} is not a zip archive ({err})", path=archive.name) from None
    written = 0
    with zf:
        for info in zf.infolist():
            name = info.filename
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip tool recorded no Unix file type
            target = (root / name).resolve()
            if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in (Path(name).parts or ("",))[0] \
                    or (target != root and root not in target.parents):
                raise DataError(f"the archive from {url} has a member outside its folder ({name!r}); nothing is "
                                "kept", path=archive.name)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DataError(f"the archive from {url} has a member that is not a file or folder ({name!r}, a link "
                                "or device); nothing is kept", path=archive.name)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    written += len(block)
                    if written > budget:
                        raise DataError(f"the archive from {url} expands to more than {max_ratio} times its size "
                                        f"({budget} bytes); nothing is kept", path=archive.name)
                    out.write(block)
    if not any(dest.iterdir()):
        shutil.rmtree(dest, ignore_errors=True)
        raise DataError(f"the archive from {url} is empty", path=archive.name)


class BeirLoader:
    """``dataset=beir``: a folder under ``data_dir/beir/<name>`` (downloaded if absent) or ``path``."""

    def __init__(
        self, *, name: str | None = None, path: str | None = None, split: str = "test", strict: bool = True,
        limit: int | None = None, data_dir: str = ".", url: str = BEIR_URL, tune_split: str | None = None,
        decompositions: str | None = None, source: str = "disk", hf_root: str | None = None,
    ) -> None:
        if source not in ("disk", "hf"):
            raise DataError(f"dataset.source must be disk or hf, got {source!r}")
        if source == "hf" and (path or not name):
            raise DataError("dataset.source=hf reads BeIR/<dataset.name> from the Hugging Face hub: set dataset.name, "
                            "not dataset.path")
        self.source, self.hf_root = source, hf_root
        self.name, self.path, self.split, self.strict, self.limit = name, path, split, strict, limit
        self.decompositions = decompositions
        self.data_dir, self.url, self.tune_split = Path(data_dir), url, tune_split

    def dataset_name(self) -> str:
        """The name runs are labelled with, known before anything is read: the folder's name for
        ``dataset.path``, else ``dataset.name``."""
        return Path(self.path).name if self.path else str(self.name or "beir")

    def folder(self) -> Path:
        if self.path:
            folder = Path(self.path)
            if not folder.is_dir():
                raise DataError("dataset.path is not a folder with corpus.jsonl, queries.jsonl and qrels/", path=folder)
            return folder
        if not self.name:
            raise DataError("dataset=beir needs dataset.name (a folder under data_dir/beir) or dataset.path")
        folder = self.data_dir / "beir" / self.name
        if folder.is_dir():
            return folder
        if self.url == BEIR_URL and self.name not in known_beir_names():
            raise DataError(unknown_name_message(self.name, self.data_dir / "beir"))
        return download(self.name, self.data_dir, self.url)

    def hf_folders(self) -> tuple[Path, Path]:
        """The two hub repositories, ``BeIR/<name>`` (corpus, queries) and ``BeIR/<name>-qrels`` (one tsv per
        split), as local folders: under ``dataset.hf_root`` (a copy in the hub's layout), else downloaded with
        huggingface_hub into its cache."""
        repos = (f"BeIR/{self.name}", f"BeIR/{self.name}-qrels")
        if self.hf_root:
            folders = tuple(Path(self.hf_root) / r for r in repos)
            for f in folders:
                if not f.is_dir():
                    raise DataError("dataset.hf_root has no folder for this hub repository", path=f)
            return folders  # type: ignore[return-value]

        if not go_offline_if_unreachable():
            raise DataError(f"dataset.source=hf: the Hugging Face hub is unreachable and {repos[0]} is not in a local copy; "
                            "pass dataset.hf_root=<folder with BeIR/<name> and BeIR/<name>-qrels>, or use a BEIR folder "
                            "(dataset.path)")
        from huggingface_hub import snapshot_download

        try:
            data = snapshot_download(repos[0], repo_type="dataset", allow_patterns=["*.jsonl.gz", "*.jsonl"])
            qrels = snapshot_download(repos[1], repo_type="dataset", allow_patterns=["*.tsv", "*.tsv.gz"])
        except Exception as err:  # noqa: BLE001 - unknown repo, network
            raise DataError(f"dataset.source=hf: cannot download {repos[0]} / {repos[1]} ({type(err).__name__}: "
                            f"{str(err)[:160]}); check dataset.name") from None
        return Path(data), Path(qrels)

    def files(self) -> BeirFiles:
        """The collection's files, from either source."""
        if self.source == "hf":
            data, qrels_dir = self.hf_folders()
            return BeirFiles(data / "corpus.jsonl", data / "queries.jsonl", qrels_dir)
        return BeirFiles.in_folder(self.folder())

    def load(self) -> Dataset:
        files = self.files()
        notes: dict[str, int] = {}
        corpus = read_corpus(files.corpus, notes)
        queries = read_queries(files.queries, notes)
        doc_ids = {d.id for d in corpus}
        split_queries, qrels = load_split(files, self.split, queries, doc_ids, strict=self.strict, notes=notes)
        split_queries, qrels = apply_limit(split_queries, qrels, self.limit)
        tune_queries: list[Query] = []
        tune_qrels: Qrels = {}
        if self.tune_split:
            tune_queries, tune_qrels = load_split(files, self.tune_split, queries, doc_ids, strict=self.strict, notes=notes)
            tune_queries, tune_qrels = apply_limit(tune_queries, tune_qrels, self.limit)
        if self.decompositions:
            split_queries, n = attach_decompositions(split_queries, self.decompositions)
            tune_queries, n_tune = attach_decompositions(tune_queries, self.decompositions)
            notes["queries_with_decomposition"] = n + n_tune
        judged = set(qrels) | set(tune_qrels)
        notes["unjudged_queries_left_out"] = sum(1 for qid in queries if qid not in judged)
        return Dataset(
            name=self.dataset_name(), corpus=corpus, queries=split_queries, qrels=qrels, split=self.split,
            tune_queries=tune_queries, tune_qrels=tune_qrels, tune_split=self.tune_split,
            source=f"hf:BeIR/{self.name}" if self.source == "hf" else str(files.corpus.parent), notes=notes,
        )
