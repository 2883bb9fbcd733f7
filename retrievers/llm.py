"""``decomposer=llm``: sub-queries written by an OpenAI-compatible chat endpoint.

``POST {base_url}/chat/completions`` with the configured system prompt and the question; the reply's
message content must be a JSON list of strings (parsed strictly: no prose, no code fences — anything else
counts as a failure and the question falls back to itself). Timeouts and retries (with backoff) on network
errors, 429 and 5xx; other HTTP errors (a wrong key, an unknown model) stop the run at once. Responses are
cached on disk, keyed by base URL, model, prompt, temperature and question, so a rerun sends nothing. The
API key comes from the environment variable named by ``api_key_env`` and is never logged or cached.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from retrievers.decomposition import Decomposer
from retrievers.errors import RetrieverError
from retrievers.fingerprint import fingerprint

log = logging.getLogger(__name__)


def _origin(url: str) -> tuple[str, str, int | None]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but never sends the ``Authorization`` header to another origin (scheme, host,
    port): a redirect from the configured endpoint to elsewhere must not leak the API key."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() == "authorization":
                    del new.headers[name]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def parse_subqueries(content: str, limit: int) -> list[str]:
    """The reply must be a JSON list of strings; raises ValueError otherwise."""
    value = json.loads(content)
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"expected a JSON list of strings, got {type(value).__name__}")
    return [x.strip() for x in value if x.strip()][:limit]


class LLMDecomposer(Decomposer):
    hops = 1

    def __init__(self, *, base_url: str, model: str, prompt: str, api_key_env: str = "OPENAI_API_KEY",
                 max_subqueries: int = 5, temperature: float = 0.0, timeout_s: float = 30, retries: int = 3,
                 cache_dir: str | None = None, fusion: str = "rrf", rrf_k: int = 60) -> None:
        super().__init__(fusion=fusion, rrf_k=rrf_k)
        if not base_url or not model:
            raise RetrieverError("decomposer.base_url and decomposer.model must be set for decomposer=llm")
        self.base_url, self.model, self.prompt = base_url.rstrip("/"), model, prompt
        self.api_key_env, self.max_subqueries, self.temperature = api_key_env, int(max_subqueries), float(temperature)
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.requests = self.cache_hits = self.failures = 0
        scheme, host, _ = _origin(self.base_url)
        if scheme == "http" and not is_loopback(host):
            msg = (f"decomposer.base_url={self.base_url} is plain http to a non-loopback host: the API key in "
                   f"${api_key_env} and every question would travel unencrypted; use https")
            log.warning(msg)
            import sys

            print(f"rbench: warning: {msg}", file=sys.stderr, flush=True)
        self._opener = urllib.request.build_opener(_SameOriginAuth)
        self._subs: dict[str, list[str]] = {}

    def _key(self, question: str) -> str:
        return fingerprint({"base_url": self.base_url, "model": self.model, "prompt": self.prompt,
                            "temperature": self.temperature, "question": question})

    def _post(self, question: str) -> str:
        body = json.dumps({"model": self.model, "temperature": self.temperature, "messages": [
            {"role": "system", "content": self.prompt}, {"role": "user", "content": question}]}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
            self.requests += 1
            req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST")
            try:
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                return str(payload["choices"][0]["message"]["content"])
            except urllib.error.HTTPError as err:
                if err.code == 429 or err.code >= 500:
                    last = err
                    continue
                raise RetrieverError(f"decomposer=llm: {self.base_url}/chat/completions answered HTTP {err.code} "
                                     f"({err.reason}); check decomposer.model, decomposer.base_url and the key in "
                                     f"${self.api_key_env}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as err:
                last = err
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise RetrieverError(f"decomposer=llm: {self.base_url} did not answer in the chat-completions "
                                     f"format: {err!r}") from None
        raise RetrieverError(f"decomposer=llm: no answer from {self.base_url} after {self.retries + 1} attempts "
                             f"(timeout {self.timeout_s:g} s): {last}")

    def decompose(self, question: str) -> list[str]:
        path = self.cache_dir / f"{self._key(question)}.json" if self.cache_dir else None
        content: str | None = None
        if path is not None and path.is_file():
            content = json.loads(path.read_text(encoding="utf-8"))["content"]
            self.cache_hits += 1
        if content is None:
            content = self._post(question)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps({"model": self.model, "question": question, "content": content}), encoding="utf-8")
                os.replace(tmp, path)
        try:
            return parse_subqueries(content, self.max_subqueries)
        except ValueError as err:
            self.failures += 1
            log.warning("decomposer=llm: unusable reply for %r (%s); using the question alone", question[:80], err)
            return []

    def subqueries(self, query, hop, history, ctx) -> list[str]:
        if hop != 1:
            return []
        subs = self._subs[query.id] = self.decompose(query.text)
        return subs

    def covered(self, query) -> bool:
        return bool(self._subs.get(query.id))

    def stats(self) -> dict[str, Any]:
        return {"llm_requests": self.requests, "llm_cache_hits": self.cache_hits, "llm_parse_failures": self.failures}
