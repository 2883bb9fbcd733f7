"""``rbench experiment=beir_full``: every public BEIR collection, BM25 + the dense model + hybrid, in one command.

1. **The plan, before anything starts**: each collection (``beir_full.collections``, default every public one
   in ``beir_full.registry``), its passages and queries, whether it is on disk, to be fetched or not
   redistributable, and the estimated encode time for the dense model on the devices found (a rate measured
   on 64 passages, times the GPUs, or the CPU).
2. **Fetch** what is missing from the BEIR mirror (``dataset.url``); an unreachable mirror is said once, and
   those collections are listed as not fetched — the rest runs.
3. **Run** each collection x system (``beir_full.systems``) as its own logged MLflow run. A point with a FINISHED
   run is skipped (same config fingerprint), so the command resumes per collection; a collection that fails
   is reported and the others go on. A collection published as a group of sub-collections (a folder of BEIR
   folders, e.g. CQADupStack's forums) is run per member and averaged, as BEIR reports it.
4. **One table**: nDCG@10 per collection and system, the published figures beside each cell (BEIR paper,
   Pyserini, MTEB; sources in the registry), and the out-of-domain gap (dense - BM25) per collection; written
   to ``beir_full.out`` (``.md``, ``.csv``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlparse

from benchmarks.arguments import command_line_overrides
from benchmarks.datasets.base import read_jsonl, text_lines
from benchmarks.datasets.beir import BEIR_URL, corpus_file, download, is_beir_folder
from benchmarks.errors import ConfigError, DataError, RbenchError
from benchmarks.run import runner
from benchmarks.tracking.groups import GROUPS
from benchmarks.tracking.tracker import varied_settings
from retrievers.encoders import cuda_count
from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.progress import fmt_seconds
from retrievers.infrastructure.safe_write import write_text


def load_registry(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {"collections": dict(data["collections"]), "sources": dict(data.get("_sources", {})),
                "models": dict(data.get("_figure_models", {}))}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"beir_full.registry: cannot read the collections registry ({type(err).__name__}: {err})",
                        path=Path(path)) from None


def point_overrides(systems: Sequence[str], command_line: Sequence[str],
                    per_system: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each system's overrides: the command line's (``top_k=100``, ``cache.dir=...``), of which a
    ``retriever.<key>`` one goes only to the systems whose retriever has that key (``retriever.k1=0.9`` to bm25
    and not to dense), then ``beir_full.per_system.<system>`` (``'+beir_full.per_system.dense=["retriever.encoder.model=
    BAAI/bge-small-en-v1.5"]'``: a key the default retriever lacks, which the command line itself cannot take).
    Every system's config is composed here, so a bad override is a config error before anything runs."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    chosen = [o for o in command_line if o.split("=", 1)[0].lstrip("+~") == "retriever"]
    if chosen:
        raise ConfigError(f"{chosen[0]}: beir_full runs each retriever of beir_full.systems ({', '.join(systems)}); "
                          "choose them there, e.g. 'beir_full.systems=[bm25,dense]'")
    unknown = sorted(set(map(str, per_system)) - set(systems))
    if unknown:
        raise ConfigError(f"beir_full.per_system: {', '.join(unknown)} is not in beir_full.systems "
                          f"({', '.join(systems)})")
    out: dict[str, list[str]] = {}
    fits: dict[str, list[str]] = {}
    for system in systems:
        try:
            node = compose(config_name="config", overrides=[f"retriever={system}"]).retriever
        except HydraException as err:
            raise ConfigError(f"beir_full.systems: {system}: {one_line(err)}") from None
        own = []
        for override in command_line:
            key = override.split("=", 1)[0]
            if key.startswith("retriever.") and \
                    OmegaConf.select(node, key[len("retriever."):], default="\0missing") == "\0missing":
                continue
            own.append(override)
            fits.setdefault(override, []).append(system)
        out[system] = own + [str(o) for o in per_system.get(system, [])]
        try:
            compose(config_name="config", overrides=[f"retriever={system}", *out[system]])
        except HydraException as err:
            raise ConfigError(f"beir_full: {system} with {' '.join(out[system])}: {one_line(err)}") \
                from None
    for override in command_line:
        key = override.split("=", 1)[0]
        if key.startswith("retriever."):
            if override not in fits:
                raise ConfigError(f"{key}: no system of beir_full.systems ({', '.join(systems)}) has this key")
            print(f"rbench beir_full: {override} applies to {', '.join(fits[override])}", flush=True)
    return out


def members(folder: Path) -> list[Path]:
    """A BEIR folder is itself the collection; a folder of BEIR folders (no corpus of its own) is a group."""
    if is_beir_folder(folder):
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and is_beir_folder(p))


def reachable(url: str, timeout: float = 5.0) -> str | None:
    """None when the mirror's host accepts a connection; otherwise why not (said once for every fetch)."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        return f"no host in {url}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as err:
        return f"{host}:{port} unreachable ({type(err).__name__}: {err})"


def encode_rate(node: Any, texts: Sequence[str]) -> tuple[float, str]:
    """Passages per second of the dense retriever configured by ``node`` on this machine, measured on ``texts``
    (its encoder, one call after a warm-up), and where it ran."""
    from hydra.utils import instantiate

    try:
        retriever = instantiate(node) if node is not None else None
        encoder = getattr(retriever, "encoder", None)
        if encoder is None or not texts:
            return 0.0, "not measured (no dense model, or no collection on disk to measure it on)"
        encoder.encode(list(texts[:8]), kind="doc")  # warm-up (model load)
        t0 = time.perf_counter()
        encoder.encode(list(texts), kind="doc")
        rate = len(texts) / max(time.perf_counter() - t0, 1e-6)
    except Exception as err:  # noqa: BLE001 - an estimate only
        return 0.0, f"not measured ({type(err).__name__}: {str(err)[:120]})"
    gpus = cuda_count()
    where = f"{gpus} GPU(s)" if gpus else f"CPU, {os.cpu_count()} cores"
    return rate * max(1, gpus), where  # several GPUs: one encoding process each


def _passages(folder: Path) -> int | None:
    """Passages of a collection the registry does not list (the lines of its members' corpora, read by the
    bounded reader: gzip, pipes and oversized lines handled as for a run); None when a corpus cannot be read
    (its run then names the problem)."""
    try:
        return sum(1 for m in members(folder) for _, line in text_lines(corpus_file(m)) if line.strip())
    except DataError:
        return None


def _sample_texts(folders: Sequence[Path], n: int = 64) -> list[str]:
    """Up to ``n`` passages (title + text) from the first collections on disk: what the encode rate is measured on
    (a corpus that cannot be read is passed over: its run names the problem)."""
    out: list[str] = []
    for folder in folders:
        for member in members(folder):
            try:
                for _, doc in read_jsonl(corpus_file(member)):
                    out.append(f"{doc.get('title', '')}\n{doc.get('text', '')}".strip())
                    if len(out) >= n:
                        return out
            except DataError:
                continue
    return out


def one_line(err: BaseException, limit: int = 300) -> str:
    """An error as one line for the plan and the table: every line of it (a config error's first line only says
    "invalid config value:", the key and value are on the next), joined, cut at ``limit``."""
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip()).replace(":;", ":")
    return text[:limit] + ("…" if len(text) > limit else "")


def check_collections(wanted: Sequence[str], table: Mapping[str, Any], data_dir: Path, registry: str, *,
                      named: bool) -> None:
    """Before the matrix: a collection named on the command line that is neither in the registry nor a BEIR folder
    on disk (with the close name), and a collection folder that cannot be read (a symbolic link that leads nowhere:
    a loop, a missing target), are one config error naming each."""
    import difflib

    problems = []
    for name in wanted:
        folder = data_dir / "beir" / name
        if folder.is_symlink() and not folder.exists():
            problems.append(f"{name}: {folder} is a symbolic link that leads nowhere (a loop, or a missing target)")
        elif named and name not in table and not (folder.is_dir() and members(folder)):
            close = difflib.get_close_matches(name, list(table), n=1)
            problems.append(f"{name!r} is neither in the registry ({registry}) nor a BEIR folder under {data_dir / 'beir'}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))
    if problems:
        raise ConfigError("beir_full.collections: " + "; ".join(problems))


def run_beir_full(cfg: Any) -> float:
    from hydra import compose

    settings = cfg.beir_full
    registry = load_registry(settings.registry)
    table = registry["collections"]
    data_dir = Path(str(cfg.data_dir))
    if str(settings.collections) == "all":  # the registry's, then any other BEIR folder already on disk
        local = sorted(p.name for p in (data_dir / "beir").glob("*") if p.is_dir() and not p.name.startswith(".")
                       and members(p)) if (data_dir / "beir").is_dir() else []
        wanted = list(table) + [n for n in local if n not in table]
    else:
        wanted = [str(c) for c in settings.collections]
    check_collections(wanted, table, data_dir, str(settings.registry), named=str(settings.collections) != "all")
    unknown = [c for c in wanted if c not in table]
    url = str(settings.get("url") or BEIR_URL)
    systems = [str(s) for s in settings.systems]

    # 1. the plan
    rows = []
    for name in wanted:
        info = table.get(name, {})
        folder = data_dir / "beir" / name
        status = "on disk" if folder.is_dir() else ("not redistributable" if info.get("public") is False
                                                   else "to fetch")
        if status == "on disk" and not info.get("passages"):  # not in the registry: count its passages
            info = {**info, "passages": _passages(folder)}
        rows.append({"name": name, "info": info, "folder": folder, "status": status})
    on_disk = [r["folder"] for r in rows if r["status"] == "on disk"]
    # the command line's overrides apply to every point (a retriever.* one to the systems that have the key),
    # beir_full.per_system to its system; every system's config is composed now, before anything runs
    extra = point_overrides(systems, command_line_overrides("beir_full"), settings.get("per_system") or {})
    nodes = {s: compose(config_name="config", overrides=[f"retriever={s}", *extra[s]]).retriever for s in systems}
    rate, where = 0.0, ""
    if any(s.startswith(("dense", "hybrid")) for s in systems):
        node = nodes[next(s for s in systems if s.startswith(("dense", "hybrid")))]
        dense_node = node.retrievers.dense if "retrievers" in node else node
        rate, where = encode_rate(dense_node, _sample_texts(on_disk))
    print(f"rbench beir_full: {len(rows)} collections x {', '.join(systems)}; data in {data_dir / 'beir'}; "
          f"experiment '{cfg.tracking.experiment}'", flush=True)
    head = f"  {'collection':18} {'passages':>11} {'queries':>8}  {'status':20} est. encode"
    print(head + "\n  " + "-" * (len(head) + 8), flush=True)
    for r in rows:
        passages = r["info"].get("passages")
        est = fmt_seconds(passages / rate) if rate and passages and r["status"] != "not redistributable" else "—"
        queries = r["info"].get("queries")
        print(f"  {r['name']:18} {passages or 0:>11,} {f'{queries:,}' if queries is not None else '?':>8}  "
              f"{r['status']:20} {est}", flush=True)
    if rate:
        print(f"  encode rate: {rate:,.0f} passages/s ({where}; measured on 64 passages)", flush=True)
    elif where:
        print(f"  encode rate: {where}", flush=True)
    if unknown:
        print(f"  not in the registry ({settings.registry}): {', '.join(unknown)} — run where on disk, no published "
              "figures", flush=True)

    # 2. fetch what is missing
    to_fetch = [r for r in rows if r["status"] == "to fetch"]
    why = reachable(url.format(name="x")) if to_fetch else None
    for r in to_fetch:
        if why:
            r["status"] = "not fetched"
            continue
        try:
            download(r["name"], data_dir, url)
            r["status"] = "fetched"
        except (DataError, OSError) as err:
            r["status"], r["why"] = "not fetched", one_line(err)
    missing = [r for r in rows if r["status"] == "not fetched"]
    if missing:
        print(f"rbench beir_full: could not fetch {len(missing)} collection(s): "
              + ", ".join(r["name"] + (f" ({r['why']})" if r.get("why") else "") for r in missing)
              + (f" — the mirror {url.format(name='<name>')}: {why}" if why else ""), flush=True)

    # 3. run every available collection x system (resumable: FINISHED points are skipped)
    results: dict[tuple[str, str], list[float]] = {}
    failures: list[str] = []
    for r in rows:
        if r["status"] not in ("on disk", "fetched"):
            continue
        split = r["info"].get("split", "test")
        for member in members(r["folder"]):
            where_ds = [f"dataset.path={member}"] if member != r["folder"] else [f"dataset.name={r['name']}"]
            for system in systems:
                # named by this point's own settings, not by the beir_full command line that made it
                own = ", ".join(varied_settings(GROUPS, extra[system]))
                name = "'" + (own + " · " if own else "").replace("\\", "\\\\").replace("'", "\\'") + \
                    "{pipeline} · {dataset}'"
                overrides = ["dataset=beir", *where_ds, f"dataset.split={split}", f"retriever={system}", *extra[system],
                             f"tracking.experiment={cfg.tracking.experiment}", f"tracking.run_name={name}"] + \
                    ([f"dataset.url='{url}'"] if settings.get("url") else [])
                try:
                    point = compose(config_name="config", overrides=overrides)
                    full = compose(config_name="config", overrides=overrides, return_hydra_config=True)
                    choices = {g: str(full.hydra.runtime.choices[g]) for g in GROUPS
                               if full.hydra.runtime.choices.get(g) not in (None, "null")}
                    choices["experiment"] = "beir_full"
                    out = runner.run_experiment(point, choices=choices)
                    results.setdefault((r["name"], system), []).append(float(out.metrics["ndcg_at_10"]))
                except (RbenchError, RetrieverError) as err:
                    failures.append(f"{r['name']} ({system}): {one_line(err)}")
                    print(f"rbench beir_full: {r['name']} x {system} failed, going on: {failures[-1]}",
                          file=sys.stderr, flush=True)

    # 4. one table, published figures beside each cell
    # the model a figure is published for: SPLADE's own, a dense retriever's encoder's
    models = {s: nodes[s].get("model") or (nodes[s].get("encoder") or {}).get("model") for s in systems}
    text, csv_rows = matrix(rows, results, systems, registry["sources"], figure_for(systems, models, registry["models"]))
    print("\n" + text, flush=True)
    if failures:
        print("failed: " + "; ".join(failures), flush=True)
    out = Path(str(settings.out))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]) if csv_rows else ["collection"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows)
    write_text(out.with_suffix(".md"), f"# BEIR, every collection\n\n{text}\n\nCommand: `rbench experiment=beir_full`\n",
               what="the beir_full table")
    write_text(out.with_suffix(".csv"), buffer.getvalue(), what="the beir_full table")
    print(f"wrote {out}.md and {out}.csv", flush=True)
    if failures or not results:  # the table holds what ran; the exit status says that something did not
        raise RbenchError(f"beir_full: {len(failures)} point(s) failed (listed above); the table has the rest"
                          if failures else "beir_full: no collection could be run (none on disk or fetched)")
    done = [v for vs in results.values() for v in vs]
    return sum(done) / len(done) if done else 0.0


def _mean(values: Sequence[float] | None) -> float | None:
    return sum(values) / len(values) if values else None


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


#: the published figures a system's cells may stand beside: (column label, registry key)
PUBLISHED = {"bm25": [("BEIR", "bm25_beir"), ("Pyserini", "bm25_pyserini")], "dense": [("MTEB", "dense_mteb")]}


def figure_for(systems: Sequence[str], models: Mapping[str, Any], figure_models: Mapping[str, str]) \
        -> dict[str, list[tuple[str, str]]]:
    """Which published figures go beside each system: BM25's always; a model's figure (MTEB's MiniLM) only
    when that system runs that model — a dense run of another model is not compared with MiniLM's number."""
    out = {}
    for s in systems:
        figures = [(label, key) for label, key in PUBLISHED.get(s, [])
                   if key not in figure_models or str(models.get(s)) == figure_models[key]]
        if figures:
            out[s] = figures
    return out


def matrix(rows: Sequence[Mapping[str, Any]], results: Mapping[tuple[str, str], Sequence[float]],
           systems: Sequence[str], sources: Mapping[str, str],
           published: Mapping[str, Sequence[tuple[str, str]]] = PUBLISHED) -> tuple[str, list[dict[str, Any]]]:
    """The markdown table (and its CSV rows): ours beside the published figures, and dense - BM25."""
    cols = ["collection", "status"]
    for s in systems:
        cols.append(f"{s} (ours)")
        cols += [f"{s}: {label}" for label, _ in published.get(s, [])]
    dense = next((s for s in systems if s.startswith("dense")), None)
    gap = "bm25" in systems and dense is not None
    if gap:
        cols.append(f"gap {dense} − BM25")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out = []
    for r in rows:
        info = r["info"]
        entry: dict[str, Any] = {"collection": r["name"], "status": r["status"]}
        cells = [r["name"], r["status"] if r["status"] not in ("on disk", "fetched") else "run"]
        for s in systems:
            ours = _mean(results.get((r["name"], s)))
            entry[f"{s}_ours"] = ours
            cells.append(_cell(ours))
            for label, key in published.get(s, []):
                entry[f"{s}_{key}"] = info.get(key)
                cells.append(_cell(info.get(key)))
        if gap:
            b, d = _mean(results.get((r["name"], "bm25"))), _mean(results.get((r["name"], dense)))
            entry["gap"] = None if b is None or d is None else d - b
            cells.append("—" if entry["gap"] is None else f"{entry['gap']:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
        out.append(entry)
    lines += ["", "nDCG@10 on each collection's evaluated split. Published figures: "
              + "; ".join(f"{k}: {v}" for k, v in sources.items()) + "."]
    return "\n".join(lines), out
