"""#36 done-criterion: a fresh-clone walkthrough. Every command line of README.md's and benchmarks/README.md's
command blocks runs, as written, in a shell (``bash -c``) whose PATH holds no virtual environment, from the root of
a fresh copy of the repository (the files ``git`` tracks or would add), in order, each exiting 0.

What stands in for the world outside this machine, and nothing else:
- the install (``python3 -m venv .venv && .venv/bin/pip install ...``, the first command's first two parts) is the one
  CI's ``.ci/run`` has just made: ``.venv`` is a link to it, so the rest of that line runs as written;
- the test command (``.venv/bin/python -m pytest``) is this suite, which is running; it is the only line left out;
- ``http://127.0.0.1:5000``, the README's MLflow server of "your application", is a real ``mlflow server`` on another
  loopback port holding the traces an MLflow-instrumented app logged (``tests/test_trace_fixtures.py``);
- ``$OPENAI_BASE_URL``/``$OPENAI_API_KEY``, the README's LLM endpoint, are a local OpenAI-compatible server that
  quotes sentences of the documents it is shown;
- ``$RBENCH_DATA_DIR`` is the shared data, as the README says for the BEIR sets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA
from test_llm import Endpoint
from test_trace_fixtures import mlflow_server  # noqa: F401 - the fixture

DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
COMMAND = re.compile(r"^    ((?:\.venv/bin/|python3 |RBENCH_DATA_DIR=)\S.*)$")
INSTALL = ("python3 -m venv .venv", ".venv/bin/pip install")
THIS_SUITE = ".venv/bin/python -m pytest"


def command_lines(path: Path) -> list[str]:
    """The command lines of a page's indented blocks, in order."""
    return [m.group(1).strip() for line in path.read_text(encoding="utf-8").splitlines() if (m := COMMAND.match(line))]


def as_run_here(line: str) -> str | None:
    """The line as this test runs it: the install parts dropped (the venv is linked), the test command skipped."""
    if line.startswith(THIS_SUITE):
        return None
    parts = [p.strip() for p in line.split("&&")]
    kept = [p for p in parts if not p.startswith(INSTALL)]
    return " && ".join(kept) or None


def fresh_copy(dst: Path) -> Path:
    """The working tree as a clone of it would be: files git tracks or would add, nothing ignored."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


class QuotingEndpoint(Endpoint):
    """An OpenAI-compatible chat endpoint that answers rbench-generate's prompts with a question and, as its
    evidence, a sentence quoted from each document it was shown."""

    def __init__(self):
        super().__init__([(200, "unused", 0)])
        handler = self.server.RequestHandlerClass
        outer = self

        def do_post(req):  # noqa: ANN001
            body = json.loads(req.rfile.read(int(req.headers["Content-Length"])))
            outer.requests.append(body)
            prompt = body["messages"][-1]["content"]
            docs = re.findall(r"<document id='([^']+)' title='[^']*'>\n(.*?)\n</document>", prompt, re.S)
            evidence = [next((s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s) > 25 and not s.startswith("#")),
                             text[:80]) for _, text in docs]
            content = json.dumps({"query": f"What does {docs[0][0] if docs else 'it'} say?", "evidence": evidence})
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            req.send_response(200)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)

        handler.do_POST = do_post


def test_the_pages_command_lines_are_found():
    lines = [line for doc in DOCS for line in command_lines(doc)]
    assert lines[0].startswith("python3 -m venv .venv && .venv/bin/pip install") and lines[0].endswith("experiment=story")
    assert THIS_SUITE in lines and len(lines) >= 20
    assert as_run_here(lines[0]) == ".venv/bin/rbench experiment=story" and as_run_here(THIS_SUITE) is None
    placeholders = [line for line in lines if re.search(r"\bDIR\b|my-beir-folder|\bq\.csv\b|my-rag-app", line)]
    assert not placeholders, "a command block line that cannot run as written"


@pytest.mark.slow
def test_a_fresh_clone_runs_every_command_of_the_readmes(tmp_path, mlflow_server):  # noqa: F811 - the fixture
    if not (SHARED_DATA / "beir" / "scifact").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    clone = fresh_copy(tmp_path / "clone")
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the install CI made
    endpoint = QuotingEndpoint()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "RBENCH_DATA_DIR": str(SHARED_DATA.resolve()), "RBENCH_CPU_FLAGS": os.environ.get("RBENCH_CPU_FLAGS", ""),
           "OPENAI_BASE_URL": endpoint.url, "OPENAI_API_KEY": "sk-walkthrough",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ran = []
    try:
        for doc in DOCS:
            for line in command_lines(doc):
                cmd = as_run_here(line)
                if cmd is None:
                    continue
                cmd = cmd.replace("http://127.0.0.1:5000", mlflow_server)  # "your application's" tracking server
                done = subprocess.run(["bash", "-c", cmd], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
                assert done.returncode == 0, f"{doc.name}: {line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
                ran.append(line)
    finally:
        endpoint.close()
    assert len(ran) == len([line for doc in DOCS for line in command_lines(doc)]) - 1  # all but the test command
    # what the lines say they make, made in the clone
    assert (clone / "results" / "mlflow.db").is_file() and (clone / "results" / "traces_handbook_spans.html").is_file()
    assert (clone / "results" / "prod_queries.jsonl").read_text(encoding="utf-8").strip()
    assert (clone / "results" / "generated_queries.jsonl").read_text(encoding="utf-8").strip()
    assert (clone / "results" / "tmp" / "handbook_gate.md").read_text(encoding="utf-8").startswith("### Retrieval gate")
