"""A tracking server that is down, or that accepts connections and never answers, fails in seconds (#22's
"fail fast when the surroundings are broken", the tracking part): one line naming the (redacted) URI, exit 2,
nothing computed, for rbench, rbench-report and rbench-audit -- not minutes of MLflow's retries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: run by .ci/run (pytest -m slow), not the README's command

BIN = Path(sys.executable).parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def silent_server():
    """A loopback socket that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def _run(argv, tmp_path):
    env = {**os.environ, "RBENCH_HOME": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return out, time.monotonic() - t0


@pytest.mark.parametrize("kind", ["down", "silent"])
@pytest.mark.parametrize("tool", ["rbench", "rbench-report", "rbench-audit"])
def test_an_unreachable_tracking_server_fails_in_seconds(tool, kind, tmp_path, request):
    port = request.getfixturevalue("silent_server") if kind == "silent" else _closed_port()
    uri = f"http://alice:hunter2-secret@127.0.0.1:{port}"
    argv = {"rbench": [str(BIN / "rbench"), f"tracking.uri={uri}"],
            "rbench-report": [str(BIN / "rbench-report"), "--experiment", "x", "--tracking-uri", uri],
            "rbench-audit": [str(BIN / "rbench-audit"), "--run-id", "abc", "--tracking-uri", uri]}[tool]
    out, seconds = _run(argv, tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert seconds < 10, seconds
    assert "Traceback" not in out.stderr
    assert f"the tracking server http://alice:***@127.0.0.1:{port} does not answer" in out.stderr
    assert "hunter2-secret" not in out.stdout + out.stderr
    assert not (tmp_path / "results" / "cache").exists()  # nothing was computed


def test_any_answer_counts_as_reachable():
    """A server without /health (404) answered; so did one whose TLS handshake failed (https to a plain-http
    server stands in for a certificate MLflow itself will check): neither is reported as down."""
    import http.server
    import threading

    from benchmarks.tracking.tracker import check_reachable

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        check_reachable(f"http://alice:pw@127.0.0.1:{port}")
        check_reachable(f"https://127.0.0.1:{port}")
        check_reachable("sqlite:////nonexistent/never/probed.db")
    finally:
        srv.shutdown()
