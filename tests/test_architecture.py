"""The tree is the architecture: imports read from the source (a small AST walk, every import statement,
also those inside functions) must form no cycle, follow the data flow (chunkers <- retrievers <- benchmarks),
keep the one-off scripts out of the core, and no code may probe stage attributes a protocol does not declare."""

from __future__ import annotations

import ast

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chunkers", "retrievers", "benchmarks")
UNDECLARED = {"returns_docs", "chunk_lists", "leaves", "records", "stats"}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported by the module ``name`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:  # "benchmarks.x.func" -> "benchmarks.x"
            target = target.rsplit(".", 1)[0] if "." in target else ""
        if target and target != name:
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                add(full if full in known else base)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, name, set(mods)) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_walk_finds_a_constructed_cycle(tmp_path):
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    # and the import reader resolves relative, aliased and function-level imports
    (tmp_path / "m.py").write_text("import os\nfrom . import y\ndef f():\n    from pkg.z import thing\n")
    assert imports(tmp_path / "m.py", "pkg.m", {"pkg", "pkg.m", "pkg.y", "pkg.z"}) == {"pkg.y", "pkg.z"}


def test_no_import_cycle_among_project_modules():
    g = graph()
    assert len(g) > 40 and "benchmarks.run.runner" in g and "retrievers.pipeline" in g["benchmarks.run.runner"]
    assert cycles(g) == []


def test_imports_follow_the_data_flow_and_scripts_stay_outside_the_core():
    for name, deps in graph().items():
        top = name.split(".")[0]
        if top == "chunkers":
            assert not {d for d in deps if d.startswith(("retrievers", "benchmarks"))}, name
        if top == "retrievers":
            assert not {d for d in deps if d.startswith("benchmarks")}, name
        if not name.startswith("benchmarks.scripts"):
            assert not {d for d in deps if d.startswith("benchmarks.scripts")}, name


def test_no_probing_of_undeclared_stage_attributes():
    probes = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in UNDECLARED):
                probes.append(f"{name}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    assert probes == []


# ------------------------------------------------------------------------------------------ benchmarks' layers
#: benchmarks/ by layer, lowest first: a module imports only from a lower layer or its own package. Siblings on
#: one level (evaluation and tracking; run and studies) do not import each other.
LAYERS = {
    "foundation": (0, ("benchmarks.errors", "benchmarks.paths", "benchmarks.labels", "benchmarks.logs")),
    "datasets": (1, ("benchmarks.datasets",)),
    "evaluation": (2, ("benchmarks.evaluation",)),
    "tracking": (2, ("benchmarks.tracking",)),
    "config resolvers": (2, ("benchmarks.resolvers",)),
    "diagnosis": (3, ("benchmarks.diagnosis",)),
    "run": (4, ("benchmarks.run",)),
    "studies": (4, ("benchmarks.studies",)),
    "entry points": (5, ("benchmarks", "benchmarks.cli", "benchmarks.api", "benchmarks.report", "benchmarks.story",
                         "benchmarks.audit", "benchmarks.generate", "benchmarks.arguments")),
}
#: where a function may import a project module: the console dispatcher (each command loads only its own tool,
#: so ``rbench --help`` stays fast) and the package's lazily loaded API attribute
DEFERRED_OK = {"benchmarks.cli", "benchmarks"}


def layer_of(module: str) -> str | None:
    best = None
    for name, (_, prefixes) in LAYERS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (name, len(p))
    return best[0] if best else None


def test_every_benchmarks_module_has_a_layer():
    missing = [m for m in graph() if m.startswith("benchmarks") and not m.startswith("benchmarks.scripts")
               and layer_of(m) is None]
    assert missing == []
    assert layer_of("benchmarks.diagnosis.verdicts") == "diagnosis" and layer_of("benchmarks.cli") == "entry points"
    assert layer_of("benchmarks.datasets.beir") == "datasets" and layer_of("benchmarks") == "entry points"


def test_benchmarks_imports_go_down_the_layers():
    wrong = []
    for name, deps in graph().items():
        here = layer_of(name)
        if here is None or name.startswith("benchmarks.scripts"):
            continue
        for d in deps:
            there = layer_of(d)
            if there is None or there == here:
                continue
            if LAYERS[there][0] >= LAYERS[here][0]:
                wrong.append(f"{name} ({here}) imports {d} ({there})")
    assert wrong == []


def test_the_layer_check_catches_an_upward_import():
    assert LAYERS[layer_of("benchmarks.run.runner")][0] > LAYERS[layer_of("benchmarks.diagnosis.page")][0]
    assert LAYERS[layer_of("benchmarks.evaluation.stats")][0] == LAYERS[layer_of("benchmarks.tracking.store")][0]


def test_only_entry_points_parse_command_lines():
    """argparse is the entry points' business: no run, evaluation, diagnosis, tracking or dataset module
    imports it, nor any module that does."""
    users = {name for name, path in modules().items()
             if any(isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names)
                    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))}
    assert users and all(layer_of(u) == "entry points" or u.startswith("benchmarks.scripts") for u in users), users
    for name, deps in graph().items():
        if layer_of(name) not in (None, "entry points") and not name.startswith("benchmarks.scripts"):
            assert not deps & users, (name, deps & users)


def deferred_project_imports() -> list[str]:
    out = []
    for name, path in modules().items():
        if name in DEFERRED_OK or name.startswith("benchmarks.scripts"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for m in ast.walk(node):
                    mods = [m.module] if isinstance(m, ast.ImportFrom) and m.module and not m.level else \
                        [a.name for a in m.names] if isinstance(m, ast.Import) else []
                    out += [f"{name}:{m.lineno} {x}" for x in mods if x.split(".")[0] in PACKAGES]
    return out


def test_project_modules_are_imported_at_the_top():
    """Deferred imports are for heavy third-party libraries only (torch, sentence-transformers, mlflow, ...):
    the project's own modules are imported at the top, so the import graph is what the file says."""
    assert deferred_project_imports() == []


def _code_lines(pattern: str) -> list[str]:
    import re

    hits = []
    for name, path in modules().items():
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(pattern, line) and not line.lstrip().startswith("#"):
                hits.append(f"{name}:{i}")
    return hits


@pytest.mark.parametrize("what,pattern", [
    ("chunker.aggregate values", r"\(\s*\"max\",\s*\"sum\",\s*\"first\"\s*\)"),
    ("versions modes", r"\(\s*\"ignore\",\s*\"filter\",\s*\"decay\"\s*\)"),
    ("the stage order", r"\"decomposer\",\s*\"versions\",\s*\"reranker\""),
    ("encoder backends", r"\(\s*\"torch\",\s*\"onnx\",\s*\"openvino\"\s*\)"),
    ("cache modes", r"\(\s*\"use\",\s*\"refresh\",\s*\"off\"\s*\)"),
    ("BM25 variants", r"\(\s*\"lucene\",\s*\"robertson\""),
    ("dense indexes", r"\(\s*\"flat\",\s*\"exact\",\s*\"hnsw\",\s*\"ivf\",\s*\"ivfpq\"\s*\)"),
    ("failure-mode labels", r"\(\s*\"chunk_boundary\",\s*\"exact_term\",\s*\"multi_hop\",\s*\"stale_version\",\s*\"simple\""),
    ("the verdict ladder", r"^LADDER\b"),
    ("the companion builder", r"^def companion_run\b"),
    ("the place rule (benchmarks.paths.is_place; its roots read from conf/paths/default.yaml)", r"^def is_place\b"),
    ("the language analyses", r"^ANALYSES\b"),
    ("the installed-module check (retrievers.infrastructure.extras.installed)", r"find_spec\("),
    ("the router rule (retrievers.pipeline.router_rule)", r"decomposition is set per route"),
    ("the backend/precision rule (retrievers.backends.precision_problem)", r"is not available with backend="),
    ("the metric names (evaluation.metrics.MEASURES)", r"[\"']ndcg[\"'],\s*[\"']recall[\"'],\s*[\"']mrr[\"'],\s*[\"']map[\"']"),
    ("the passage attribution routes", r"^ATTRIBUTION_ROUTES\b"),
])
def test_defined_once(what, pattern):
    hits = _code_lines(pattern)
    assert len(hits) == 1, f"{what}: {hits}"


def test_the_validator_keeps_no_option_lists_of_its_own():
    """Component options are declared next to their classes (``OPTIONS``) and the validator reads them."""
    import benchmarks.run.validate as v

    assert not hasattr(v, "RULES") and not hasattr(v, "PREFIX_RULES") and not hasattr(v, "NEEDS")
    options, requires, settings_rule = v.declared("retrievers.encoders.SentenceTransformerEncoder")
    from retrievers.encoders import SentenceTransformerEncoder

    assert options == dict(SentenceTransformerEncoder.OPTIONS) and requires == SentenceTransformerEncoder.REQUIRES
    # backend/precision compatibility, declared by the component that encodes (the dense retriever's encoder node)
    assert settings_rule == SentenceTransformerEncoder.requirements
    assert v.declared("retrievers.dense.DenseRetriever")[2] is None
    # merged along the class hierarchy: a fixed-size chunker takes the base class's aggregate too
    chunker_options, _, _ = v.declared("chunkers.windows.FixedTokenChunker")
    assert {"aggregate", "size", "overlap"} <= set(chunker_options)
    assert v.declared("shutil.copyfile") == ({}, (), None)
    # the validator names no component class
    source = Path(v.__file__).read_text(encoding="utf-8")
    assert "DenseRetriever" not in source and "precision_problem" not in source


def test_the_verdict_ladder_covers_the_vocabulary_in_order():
    from benchmarks.diagnosis.verdicts import LADDER
    from benchmarks.labels import VERDICTS

    names = [n for n, _ in LADDER]
    assert sorted(names) == sorted(VERDICTS) and names[0] == "stale_version" and names[-1] == "other"


def test_no_module_global_carries_run_results():
    import benchmarks.run.runner as runner

    assert not hasattr(runner, "LAST")


def test_what_a_beir_folder_is_is_said_once():
    """#34: one rule (benchmarks.datasets.beir.is_beir_folder: corpus.jsonl or corpus.jsonl.gz); a module testing
    for a corpus file of its own (the sweep presets' resolver once ignored corpus.jsonl.gz) fails here."""
    hits = [h for h in _code_lines(r"[\"']corpus\.jsonl[\"']\)*\s*\)?\.(?:is_file|exists)\(|data_file\([^)]*corpus\.jsonl")
            if not h.startswith("benchmarks.datasets.beir:")]
    assert hits == []


def test_the_api_does_not_import_the_console_entry_points():
    """#34: the Python API registers the config resolvers from their own module, not by importing cli.py."""
    assert "benchmarks.cli" not in graph()["benchmarks.api"]
    assert "benchmarks.resolvers" in graph()["benchmarks.api"]


#: what the retrieval package's own modules are: retrieval (queries -> ranked lists) and what it needs for that
#: (caches, encoders and their backends, engines and shards, the stage protocol, the text analyses)
INFRASTRUCTURE = "retrievers.infrastructure"


def test_infrastructure_is_a_room_below_retrieval():
    """#34: errors, redaction, safe writes, progress, the hub rule, fingerprints and the installed-module check live in
    ``retrievers.infrastructure``, which imports nothing else of the project; ``retrievers``' own modules are
    retrieval, none of them general plumbing the benchmarks need for other work."""
    g = graph()
    rooms = [m for m in g if m.startswith(INFRASTRUCTURE + ".")]
    assert {f"{INFRASTRUCTURE}.{m}" for m in ("redact", "safe_write", "errors", "progress", "hub", "fingerprint",
                                               "extras")} <= set(rooms)
    for m in rooms:
        assert all(d == INFRASTRUCTURE or d.startswith(INFRASTRUCTURE + ".") for d in g[m]), (m, g[m])
    top_level = {p.stem for p in (ROOT / "retrievers").glob("*.py")}
    assert not top_level & {"redact", "safe_write", "errors", "progress", "hub", "fingerprint", "extras"}


def test_cli_parses_and_dispatches_only():
    """#34: ``cli.py`` holds the console entry points and how their errors end (one line, an exit code); the
    pre-checks, signals, the sweep's summary, Hydra callbacks, log filters and resolvers live in their own modules."""
    tree = ast.parse((ROOT / "benchmarks" / "cli.py").read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert defined == {"main", "run", "report", "audit", "generate", "_tool", "_fail", "_full_disk_message",
                       "_fail_if_mlflow", "_fail_if_full_disk"}, defined
    assert not any(isinstance(n, ast.ClassDef) for n in tree.body)


def test_default_locations_are_derived_in_the_paths_group_only():
    """#34: every location's default (home, data_dir, cache.dir, tracking.uri, artifact_root, Hydra's folders) is
    written in conf/paths/default.yaml; Python reads it from there (``benchmarks.paths.location``) and derives none
    from the environment itself; the keys that group sets are the places a run's identity leaves out."""
    from benchmarks import paths

    hits = [h for h in _code_lines(r"environ.*\b(RBENCH_HOME|RBENCH_CACHE_DIR|MLFLOW_TRACKING_URI|RBENCH_DATA_DIR)\b")
            if not h.startswith(("benchmarks.scripts", "benchmarks.paths:"))]
    assert hits == []
    group = (ROOT / "conf" / "paths" / "default.yaml").read_text(encoding="utf-8")
    assert "mlflow.db" in group and "RBENCH_CACHE_DIR" in group
    config = (ROOT / "conf" / "config.yaml").read_text(encoding="utf-8")
    assert "mlflow.db" not in config and "RBENCH_HOME" not in config and "- paths: default" in config
    assert {"home", "data_dir", "cache", "tracking", "hydra"} <= set(paths.PLACE_ROOTS)
    assert all(paths.is_place(k) for k in ("home", "data_dir", "cache.dir", "tracking.uri", "hydra.run.dir"))
