"""Every ``rbench``/``rbench-report``/``rbench-audit``/``rbench-generate`` command in the code blocks of the README and
the reference pages it links (conf/README.md, benchmarks/README.md, results/README.md)
parses: ``rbench`` commands compose and validate (the same precheck the CLI runs, no data read), report and
audit commands pass their argument parsers. A renamed key, option or flag in the docs fails here (#16)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the README and the reference pages it links (the contract beside conf/, the tools beside benchmarks/, results)
DOCS = [ROOT / "README.md", ROOT / "conf" / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "results" / "README.md"]


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
        blocks += re.findall(r"((?:^    .*\n?)+)", text, re.M)  # indented code blocks
        for block in blocks:
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip().split("  #", 1)[0].strip()
                if not re.match(r"^(?:[A-Z_]+=\S+\s+)*(?:\S*/)?rbench(?:-report|-audit|-generate)?(?:\s|$)", line):
                    continue
                words = shlex.split(line, comments=True)
                while words and re.match(r"^[A-Z_]+=", words[0]):  # env assignments
                    words = words[1:]
                if words and words[0].split("/")[-1] in ("rbench", "rbench-report", "rbench-audit", "rbench-generate"):
                    found.append((f"{doc.relative_to(ROOT)}: {line[:90]}", [words[0].split("/")[-1], *words[1:]]))
    return found


COMMANDS = commands()


def test_the_docs_have_commands():
    names = {argv[0] for _, argv in COMMANDS}
    assert {"rbench", "rbench-report", "rbench-audit", "rbench-generate"} <= names and len(COMMANDS) > 30
    for doc in DOCS:  # every page has commands, and the README links every reference page
        assert any(where.startswith(f"{doc.relative_to(ROOT)}: ") for where, _ in COMMANDS), doc
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"]({d.relative_to(ROOT)})" in readme for d in DOCS[1:])


@pytest.mark.slow
@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_readme_command_parses(where, argv):
    if argv[0] == "rbench":
        from benchmarks.run.precheck import precheck

        assert precheck(argv[1:]) is None, where
    elif argv[0] == "rbench-report":
        from benchmarks.report import build_parser

        build_parser().parse_args(argv[1:])
    elif argv[0] == "rbench-generate":
        from benchmarks.generate import build_parser as generate_parser

        generate_parser().parse_args(argv[1:])
    else:
        from benchmarks.audit import build_parser as audit_parser

        audit_parser().parse_args(argv[1:])


def test_every_command_in_the_docs_runs_from_the_venv_the_quick_start_made():
    """#36: the quick start makes ``.venv`` and never activates it; a later bare ``rbench`` or ``mlflow ui`` was
    "command not found". Every command line of a code block names the venv's copy."""
    bare = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S) + re.findall(r"((?:^    .*\n?)+)", text, re.M)
        for block in blocks:
            for line in block.splitlines():
                m = re.match(r"^\s*(?:[A-Z_]+=\S+\s+)*(\S+)\s", line)
                if m and m.group(1) in ("rbench", "rbench-report", "rbench-audit", "rbench-generate", "mlflow", "python",
                                        "pytest"):
                    bare.append(f"{doc.relative_to(ROOT)}: {line.strip()[:80]}")
    assert bare == []


def test_printed_hints_name_the_command_as_this_shell_finds_it(tmp_path, monkeypatch):
    """The hints a run prints (``mlflow ui ...``, ``rbench-audit --run-id ...``): the venv's path when the PATH does not
    find this install's command, the bare name when it does."""
    import sys

    from benchmarks.paths import runnable

    bindir = Path(sys.executable).parent
    monkeypatch.chdir(bindir.parent.parent)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert runnable("rbench") == str((bindir / "rbench").relative_to(bindir.parent.parent))
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    assert runnable("rbench") == "rbench"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert runnable("rbench") == str(bindir / "rbench")
    assert runnable("no-such-command-here") == "no-such-command-here"
