"""The tree is the architecture: imports read from the source (a small AST walk, every import statement,
also those inside functions) must form no cycle, follow the data flow (chunkers <- retrievers <- benchmarks),
keep the one-off scripts out of the core, and no code may probe stage attributes a protocol does not declare."""

from __future__ import annotations

import ast
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
