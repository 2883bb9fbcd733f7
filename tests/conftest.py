from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# precision=auto follows the CPU's flags (bf16 where it has native BF16): the suite runs as on a CPU without
# them, so exact-vector tests mean the same on every machine; tests/test_auto_precision.py fakes flag sets
os.environ.setdefault("RBENCH_CPU_FLAGS", "")
SHARED_DATA = Path(os.environ.get("RBENCH_DATA_DIR", ROOT.parent / "shared" / "data"))


def write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: list[tuple], split: str = "test",
               header: bool = True) -> Path:
    """A BEIR folder from plain rows; returns the folder."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    lines = ["query-id\tcorpus-id\tscore"] if header else []
    lines += [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


TINY_CORPUS = [
    {"_id": "d1", "title": "Solar power", "text": "Solar panels convert sunlight into electricity."},
    {"_id": "d2", "title": "Wind power", "text": "Wind turbines convert the kinetic energy of wind into electricity."},
    {"_id": "d3", "title": "Coal", "text": "Coal is burned in power stations.", "metadata": {"version": 2}},
    {"_id": "doc with spaces", "title": "Hydro", "text": "Dams hold water; turbines in a dam generate hydroelectric power."},
    {"_id": "d5", "title": "", "text": ""},
]
TINY_QUERIES = [
    {"_id": "q1", "text": "how do solar panels make electricity"},
    {"_id": "q2", "text": "hydroelectric dam turbines"},
    {"_id": "q3", "text": "unjudged query about coal"},
]
TINY_QRELS = [("q1", "d1", 1), ("q2", "doc with spaces", 2), ("q2", "d2", 1)]


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny", TINY_CORPUS, TINY_QUERIES, TINY_QRELS)


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "beir").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server_at(root: Path, *, workers: int = 1, artifacts: Path | None = None, timeout: float = 120):
    """A real ``mlflow server`` on loopback with its store (and artifacts) under ``root``; yields its URI, and
    stops it (its whole process group) afterwards. Fails the test with the server's log if it does not answer."""
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                             f"sqlite:///{root}/server.db", "--artifacts-destination", str(artifacts or root / "artifacts"),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"mlflow server did not come up: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
