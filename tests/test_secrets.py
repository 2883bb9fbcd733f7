"""Secrets stay out of every record (#27): one redaction rule (``retrievers.infrastructure.redact``) for params, tags, config
artifacts, Hydra's run-folder files, console and log lines, reports and audits.

The end-to-end test runs a real ``mlflow server`` on loopback, reaches it as ``http://alice:PASSWORD@host``
(requests sends the user-info as basic auth, as for a server behind basic authentication), plants a secret in a
config key and in MLflow's credential variables, runs ``rbench`` (one run and a sweep), ``rbench-report`` and
the trace audit, and greps every file they wrote and every line they printed.
"""

from __future__ import annotations

import logging
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import mlflow_server_at

from retrievers.infrastructure.redact import (MASK, RedactingStream, redact_config, redact_file, redact_text, register,
                               secret_name, secret_values)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize("text, expected", [
    ("http://alice:S3cret@127.0.0.1:5000/api", "http://alice:***@127.0.0.1:5000/api"),
    ("postgresql://mlflow:pa@ss@db.internal/mlflow", "postgresql://mlflow:***@db.internal/mlflow"),
    ("https://ghp_TOKEN1234@github.com/org/repo.git", "https://***@github.com/org/repo.git"),
    ("MLFLOW_TRACKING_URI=https://bob:x@mlflow.corp:443 rbench", "MLFLOW_TRACKING_URI=https://bob:***@mlflow.corp:443 rbench"),
    # Hydra's override syntax escapes colons; repr() doubles the backslashes
    (r"tracking.uri=http\://alice\:S3cret@h\:5000", r"tracking.uri=http\://alice\:***@h\:5000"),
    ("['tracking.uri=http\\\\://alice\\\\:S3cret@h\\\\:5000']", "['tracking.uri=http\\\\://alice\\\\:***@h\\\\:5000']"),
    ("https://s3.amazonaws.com/b/k?X-Amz-Date=1&X-Amz-Signature=abc123&x=2",
     "https://s3.amazonaws.com/b/k?X-Amz-Date=1&X-Amz-Signature=***&x=2"),
    ("https://host/data.zip?token=abc&page=2", "https://host/data.zip?token=***&page=2"),
    ("decomposer.api_key=sk-12345", "decomposer.api_key='***'"),
    ("  override_dirname: +tracking.api_token=TOK777,rerun=true", "  override_dirname: +tracking.api_token='***',rerun=true"),
    ("retriever.api_key: sk-12345 is not a string", "retriever.api_key: '***' is not a string"),
    # not secrets: left exactly as they are
    ("http://127.0.0.1:5000/#/experiments/1", "http://127.0.0.1:5000/#/experiments/1"),
    ("sqlite:////tmp/results/mlflow.db", "sqlite:////tmp/results/mlflow.db"),
    ("chunker.max_tokens=256 tokenizer: bert", "chunker.max_tokens=256 tokenizer: bert"),
    ("decomposer.api_key_env=OPENAI_API_KEY", "decomposer.api_key_env=OPENAI_API_KEY"),
    ("Password: at least 12 characters, changed every 90 days.", "Password: at least 12 characters, changed every 90 days."),
    ("tracking.uri: ${oc.env:MLFLOW_TRACKING_URI}", "tracking.uri: ${oc.env:MLFLOW_TRACKING_URI}"),
    ("mail alice@example.com", "mail alice@example.com"),
])
def test_redaction_rule(text, expected, monkeypatch):
    for key in list(os.environ):
        if secret_name(key):
            monkeypatch.delenv(key)
    assert redact_text(text) == expected


@pytest.mark.parametrize("name, secret", [
    ("password", True), ("db_passwd", True), ("hf_token", True), ("MLFLOW_TRACKING_TOKEN", True), ("api_key", True),
    ("apiKey", True), ("X-Amz-Signature", True), ("client_secret", True), ("authorization", True),
    ("aws_access_key_id", True), ("credentials", True),
    ("max_tokens", False), ("tokenizer", False), ("token_budget", False), ("api_key_env", False), ("keywords", False),
    ("author", False), ("PWD", False), ("monkey", False),
])
def test_secret_names(name, secret):
    assert secret_name(name) is secret


def test_config_files_mask_every_secret_key_and_stay_valid_yaml(tmp_path):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text("tracking:\n  uri: http://alice:pw123456@h:5000\n  password: hunter22\n"
                    "decomposer:\n  api_key_env: OPENAI_API_KEY\n  token: abcdefgh\nchunker:\n  max_tokens: 128\n",
                    encoding="utf-8")
    assert redact_file(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data == {"tracking": {"uri": "http://alice:***@h:5000", "password": MASK},
                    "decomposer": {"api_key_env": "OPENAI_API_KEY", "token": MASK}, "chunker": {"max_tokens": 128}}
    assert not redact_file(path)  # nothing left to mask: the file is not rewritten


def test_structured_config_masks_by_key_and_keeps_the_rest():
    cfg = {"tracking": {"uri": "postgresql://u:pw@db/mlflow", "experiment": "x"}, "llm": {"api_key": "sk-1", "n": 3},
           "list": ["http://a:b@h", 1]}
    out = redact_config(cfg)
    assert out == {"tracking": {"uri": "postgresql://u:***@db/mlflow", "experiment": "x"},
                   "llm": {"api_key": MASK, "n": 3}, "list": ["http://a:***@h", 1]}
    assert cfg["llm"]["api_key"] == "sk-1"  # the input is not changed


def test_environment_secrets_and_registered_keys_are_masked_anywhere(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("SOME_TOKEN", "true")  # too trivial to be scrubbed from every text
    monkeypatch.setenv("PWD", "/home/alice/work")  # the working folder is no secret
    assert redact_text("login failed for correct-horse-battery") == f"login failed for {MASK}"
    assert redact_text("true in /home/alice/work") == "true in /home/alice/work"
    assert "correct-horse-battery" in secret_values()
    register("llm-key-from-ANY_NAME")
    assert redact_text("Bearer llm-key-from-ANY_NAME") == f"Bearer {MASK}"
    # the fingerprint's rule reads only the text: the same in every environment
    assert redact_text("correct-horse-battery", values=False) == "correct-horse-battery"


def test_console_and_log_records_are_redacted(monkeypatch):
    import io

    from retrievers.infrastructure import redact

    buf = io.StringIO()
    stream = RedactingStream(buf)
    print("server http://alice:pw9999@h:1/", file=stream)
    assert buf.getvalue() == "server http://alice:***@h:1/\n"
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    redact.install()
    redact.install()  # idempotent: wrapped once
    assert isinstance(sys.stderr, RedactingStream) and not isinstance(sys.stderr._stream, RedactingStream)
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "uri %s", ("http://u:secret1@h",), None)
    assert record.getMessage() == "uri http://u:***@h"


def test_a_rotated_secret_is_the_same_run():
    from benchmarks.tracking.provenance import config_fingerprint

    def cfg(pw, key):
        return {"retriever": {"k1": 0.9}, "tracking": {"uri": f"http://a:{pw}@h"}, "llm": {"api_key": key,
                "base_url": f"https://u:{pw}@llm.example/v1"}}

    assert config_fingerprint(cfg("old-pw", "sk-1"), "d", code="c") == config_fingerprint(cfg("new-pw", "sk-2"), "d", code="c")
    assert config_fingerprint(cfg("pw", "sk"), "d", code="c") != config_fingerprint(
        {**cfg("pw", "sk"), "retriever": {"k1": 1.2}}, "d", code="c")


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on loopback (its own store and artifact folder)."""
    root = tmp_path_factory.mktemp("server")
    with mlflow_server_at(root) as uri:
        yield int(uri.rsplit(":", 1)[1]), root


def _files_holding(folder: Path, secrets: list[str]) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return hits


@pytest.mark.slow
def test_no_secret_in_any_file_or_line_written_by_a_run_a_sweep_the_report_and_the_trace_audit(
        mlflow_server, tmp_path):
    port, server_root = mlflow_server
    password, token, env_password = "S3cret-Uri-Pw-9137", "tok-config-key-5521", "env-tracking-pw-7781"
    uri = f"http://alice:{password}@127.0.0.1:{port}"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "RBENCH_HOME": str(home), "MLFLOW_TRACKING_USERNAME": "alice",
           "MLFLOW_TRACKING_PASSWORD": env_password, "MLFLOW_TRACKING_URI": uri, "RBENCH_CACHE_DIR": str(home / "cache")}
    env.pop("HYDRA_FULL_ERROR", None)
    secrets = [password, token, env_password]

    def run(*argv: str) -> str:
        out = subprocess.run([*argv], cwd=home, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout + out.stderr

    printed = run(str(BIN / "rbench"), f"+tracking.api_token={token}")
    printed += run(str(BIN / "rbench"), "-m", f"+tracking.api_token={token}", "retriever.k1=1.2,1.5")
    printed += run(str(BIN / "rbench-report"), "--experiment", "rbench", "--out", str(home / "report"),
                   "--format", "md,csv,latex")
    traces = home / "traces.jsonl"
    traces.write_text('{"query": "how many leave days", "contexts": [{"id": "c1", "text": "Annual leave is 25 days."}],'
                      ' "reference": "Annual leave is 25 days."}\n', encoding="utf-8")
    printed += run(str(BIN / "rbench-audit"), "--traces", str(traces), "--out", str(home / "traces_audit"))

    assert [s for s in secrets if s in printed] == []
    assert _files_holding(home, secrets) == []
    assert _files_holding(server_root, secrets) == []  # the store and the artifacts the server keeps
    # what was recorded still tells servers apart, and the secret key is visibly masked
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    runs = client.search_runs([client.get_experiment_by_name("rbench").experiment_id])
    assert len(runs) == 3
    for r in runs:
        assert r.data.params["tracking.uri"] == f"http://alice:***@127.0.0.1:{port}"
        assert r.data.params["tracking.api_token"] == MASK
    assert "alice:***@127.0.0.1" in printed
    assert (home / "report.tex").is_file() and (home / "traces_audit.html").is_file()
    hydra_files = list((home / "results" / "hydra").rglob("*.yaml"))
    assert any(p.name == "multirun.yaml" for p in hydra_files) and any(p.name == "overrides.yaml" for p in hydra_files)


@pytest.mark.parametrize("text,leaked", [
    ("upstream answered 401: Authorization: Basic Ym9iOlMzY3JldFBhc3M= was refused", "Ym9iOlMzY3JldFBhc3M="),
    ("request echo: Proxy-Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
    ("headers:\n  Authorization: Bearer eyJhbGciOi.payload.sig\n", "eyJhbGciOi.payload.sig"),
    ("- +retriever.headers={Authorization: 'Bearer eyJhbGciOi.payload.sig'}", "eyJhbGciOi.payload.sig"),
    ("dataset.path: not a folder: https:/bob:S3cretPass91@files.example.com/data", "S3cretPass91"),
])
def test_credentials_in_error_bodies_headers_and_mangled_urls_are_masked(text, leaked):
    """#35: an HTTP credential after its scheme (Basic's base64 too), a credential header echoed in free text, and a
    URL whose '//' a file-system path collapsed to '/' keep no secret."""
    out = redact_text(text, config_file=text.startswith("headers"))
    assert leaked not in out and MASK in out


def test_a_password_in_a_url_given_as_a_path_is_in_no_printed_line_or_file(tmp_path):
    """#35: dataset.path (and the Hydra folder's files) with a URL holding a password and a Bearer header."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "RBENCH_HOME": str(home)}
    out = subprocess.run([str(BIN / "rbench"), "dataset=files", "dataset.path=https://bob:Pw-in-path-4471@files.example.com/kb",
                          "dataset.queries=q.jsonl"], cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "not a folder" in out.stderr
    assert "Pw-in-path-4471" not in out.stdout + out.stderr
    assert not _files_holding(home, ["Pw-in-path-4471"])


def test_a_password_in_a_decomposer_url_is_in_no_run_name_store_row_or_file(tmp_path):
    """#35: decomposer.base_url=http://bob:PASSWORD@... was stored in clear: the run's name is made from the command
    line's settings. The run fails (nothing answers there); the password is in no printed line and no file."""
    home = tmp_path / "home"
    home.mkdir()
    out = subprocess.run([str(BIN / "rbench"), "decomposer=llm", "decomposer.base_url=http://bob:Pw-llm-8812@127.0.0.1:9/v1",
                          "decomposer.retries=0", "decomposer.timeout_s=2", "dataset.limit=2"],
                         cwd=home, env={**os.environ, "RBENCH_HOME": str(home)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "bob:***@127.0.0.1:9" in out.stderr
    assert "Pw-llm-8812" not in out.stdout + out.stderr
    assert not _files_holding(home, ["Pw-llm-8812"])


def test_a_servers_echo_of_the_credentials_is_masked_by_every_tool(tmp_path):
    """#35: a tracking server whose error body echoes the request (the URI's user-info, 'Authorization: Basic ...')
    had that echo printed by rbench, rbench-report and rbench-audit; the Basic value is base64 of user:password."""
    import base64
    import http.server
    import threading

    password = "Echo-pw-5517"
    basic = base64.b64encode(f"bob:{password}".encode()).decode()

    class Echo(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            body = (f"bad request {self.path}: Authorization: {self.headers.get('Authorization')}").encode()
            self.send_response(400)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://bob:{password}@127.0.0.1:{server.server_address[1]}"
    env = {**os.environ, "RBENCH_HOME": str(tmp_path), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    try:
        for argv in ([str(BIN / "rbench"), f"tracking.uri={uri}", "dataset.limit=2"],
                     [str(BIN / "rbench-report"), "--experiment", "rbench", "--tracking-uri", uri],
                     [str(BIN / "rbench-audit"), "--run-id", "0123456789abcdef", "--tracking-uri", uri]):
            out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            printed = out.stdout + out.stderr
            assert out.returncode != 0, printed[-1500:]
            assert password not in printed and basic not in printed, (argv[0], printed[-1500:])
            assert "Traceback" not in printed, (argv[0], printed[-1500:])
            # rbench and rbench-report print the server's answer (masked); rbench-audit names the URI (masked)
            assert ("Authorization: '***'" in printed if "audit" not in argv[0] else "bob:***@127.0.0.1" in printed)
    finally:
        server.shutdown()


def test_a_references_url_and_a_bearer_header_leave_no_secret_in_any_line_or_file(tmp_path):
    """#35: --references given as a URL with a password (printed in the 'not found' error), and
    +tracking.headers={Authorization: 'Bearer ...'} (in clear in the Hydra folder's config.yaml, hydra.yaml and
    overrides.yaml)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "RBENCH_HOME": str(home)}
    traces = home / "t.jsonl"
    traces.write_text(json.dumps({"query": "q", "contexts": [{"id": "c1", "text": "t"}]}) + "\n", encoding="utf-8")
    out = subprocess.run([str(BIN / "rbench-audit"), "--traces", str(traces), "--references",
                          "https://bob:Ref-pw-6620@files.example.com/refs.jsonl"], cwd=home, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "references file not found" in out.stderr
    assert "Ref-pw-6620" not in out.stdout + out.stderr
    run = subprocess.run([str(BIN / "rbench"), "+tracking.headers={Authorization: 'Bearer tok-hdr-93d1f7'}",
                          "dataset.limit=2"], cwd=home, env=env, capture_output=True, text=True, timeout=300)
    assert "tok-hdr-93d1f7" not in run.stdout + run.stderr
    assert list(home.rglob("overrides.yaml"))  # the Hydra folder was written (before the job started)
    assert not _files_holding(home, ["tok-hdr-93d1f7", "Ref-pw-6620"])
