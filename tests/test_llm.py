"""decomposer=llm against a local OpenAI-compatible HTTP server the test starts: strict JSON-list parsing,
retries on 5xx, fail-fast on 4xx, timeouts, an on-disk response cache, the API key never written."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chunkers import Document, NoChunker, Query
from retrievers.decomposition import DecomposingRetriever
from retrievers.infrastructure.errors import RetrieverError
from retrievers.llm import LLMDecomposer, parse_subqueries
from test_decomposition import Scripted


class Endpoint:
    """Answers /v1/chat/completions from a script: a list of (status, content or None, delay_s)."""

    def __init__(self, script):
        self.script, self.requests = list(script), []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, content, delay = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                if delay:
                    import time

                    time.sleep(delay)
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def endpoint():
    made = []

    def make(script):
        made.append(Endpoint(script))
        return made[-1]

    yield make
    for e in made:
        e.close()


def make(url, tmp_path, **kw):
    return LLMDecomposer(base_url=url, model="m-1", prompt="Split it. JSON list only.", api_key_env="RBENCH_TEST_KEY",
                         cache_dir=str(tmp_path / "llm"), retries=kw.pop("retries", 2), timeout_s=kw.pop("timeout_s", 5), **kw)


def test_parse_is_strict():
    assert parse_subqueries('["a", " b ", ""]', 5) == ["a", "b"]
    assert parse_subqueries('["a", "b", "c"]', 2) == ["a", "b"]
    for bad in ('```json\n["a"]\n```', "Sure! [\"a\"]", '{"queries": ["a"]}', '["a", 3]'):
        with pytest.raises(ValueError):
            parse_subqueries(bad, 5)


def test_subqueries_from_endpoint_are_retrieved_and_cached(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("RBENCH_TEST_KEY", "sk-secret-123")
    ep = endpoint([(200, '["Shirley Temple", "Kiss and Tell film"]', 0)])
    q = Query("q", "What position did the Kiss and Tell actress hold?")
    docs = [Document("a", "A", "x"), Document("b", "B", "y")]
    base = Scripted({q.text: {"a": 1}, "Shirley Temple": {"b": 2}, "Kiss and Tell film": {"a": 3}})
    dec = make(ep.url, tmp_path)
    r = DecomposingRetriever(retriever=base, decomposer=dec)
    r.index([c for d in docs for c in NoChunker().chunk(d)])
    ranking = r.rank([q], top_k=2)
    assert base.seen == [q.text, "Shirley Temple", "Kiss and Tell film"]
    (req,) = ep.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-secret-123"
    assert req["body"]["model"] == "m-1" and req["body"]["messages"][1]["content"] == q.text
    assert ranking.stats["llm_requests"] == 1 and ranking.records["q"]["decomposed"] is True
    cached = list((tmp_path / "llm").glob("*.json"))
    assert len(cached) == 1 and "sk-secret" not in cached[0].read_text()
    # a second decomposer with the same prompt+model: served from disk, no request
    again = make(ep.url, tmp_path)
    assert again.decompose(q.text) == ["Shirley Temple", "Kiss and Tell film"]
    assert len(ep.requests) == 1 and again.cache_hits == 1
    # another model is another key
    other = LLMDecomposer(
        base_url=ep.url, model="m-2", prompt="Split it. JSON list only.", cache_dir=str(tmp_path / "llm"))
    other.decompose(q.text)
    assert len(ep.requests) == 2


def test_unusable_reply_falls_back_and_is_counted(endpoint, tmp_path):
    ep = endpoint([(200, "Here are the queries: a, b", 0)])
    dec = make(ep.url, tmp_path)
    assert dec.decompose("q?") == [] and dec.failures == 1 and len(ep.requests) == 1


def test_retries_on_server_errors_then_succeeds(endpoint, tmp_path):
    ep = endpoint([(503, None, 0), (500, None, 0), (200, '["x"]', 0)])
    dec = make(ep.url, tmp_path, retries=2)
    assert dec.decompose("q?") == ["x"] and len(ep.requests) == 3


def test_client_errors_fail_fast_and_timeouts_give_up(endpoint, tmp_path):
    ep = endpoint([(401, None, 0)])
    with pytest.raises(RetrieverError, match="HTTP 401.*RBENCH_TEST_KEY"):
        make(ep.url, tmp_path).decompose("q?")
    assert len(ep.requests) == 1
    slow = endpoint([(200, '["x"]', 1.5)])
    with pytest.raises(RetrieverError, match="after 2 attempts"):
        make(slow.url, tmp_path, retries=1, timeout_s=0.3).decompose("q?")
