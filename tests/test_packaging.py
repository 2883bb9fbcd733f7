"""A clean install (#24): no top-level import name of ours is provided by a second installed distribution
(pysbd, for one, ships a top-level ``benchmarks`` package that shadowed ours), and the API imports from a folder
outside the checkout."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

OURS = ("benchmarks", "chunkers", "retrievers")


def owners() -> dict[str, list[str]]:
    found = importlib.metadata.packages_distributions()
    return {name: sorted(set(found.get(name, []))) for name in OURS}


def collisions(table: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: dists for name, dists in table.items() if [d for d in dists if d != "retrieval-bench"]}


def test_no_other_installed_distribution_provides_our_import_names():
    table = owners()
    assert all("retrieval-bench" in dists for dists in table.values()), table
    assert collisions(table) == {}, f"another distribution installs a top-level package of ours: {collisions(table)}"


def test_the_collision_check_sees_a_second_owner():
    assert collisions({"benchmarks": ["pysbd", "retrieval-bench"], "chunkers": ["retrieval-bench"]}) == \
        {"benchmarks": ["pysbd", "retrieval-bench"]}


def test_the_api_imports_from_outside_the_checkout(tmp_path):
    code = ("import benchmarks, pathlib; from benchmarks import evaluate; "
            "print(pathlib.Path(benchmarks.__file__).resolve().parent)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == Path(__file__).resolve().parent.parent / "benchmarks"
