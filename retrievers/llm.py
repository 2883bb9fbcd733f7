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
from typing import Any, ClassVar

from retrievers.decomposition import Decomposer
from retrievers.infrastructure.errors import RetrieverError
from retrievers.infrastructure.fingerprint import fingerprint
from retrievers.infrastructure.redact import redact_text
from retrievers.infrastructure.redact import register as register_secret
from chunkers.options import Options, integer, number

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


class ChatClient:
    """An OpenAI-compatible chat-completions client with the project's key handling, retries and an on-disk
    response cache (keyed by base URL, model, system prompt, temperature and message; never the key).
    ``what`` names the config section in error messages (``decomposer=llm``, ``rbench-generate``)."""

    def __init__(self, *, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0,
                 timeout_s: float = 30, retries: int = 3, cache_dir: str | Path | None = None,
                 what: str = "decomposer=llm", hint: str = "decomposer.model, decomposer.base_url") -> None:
        if not base_url or not model:
            raise RetrieverError(f"{what}: a base URL and a model must be set")
        self.base_url, self.model, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.temperature, self.timeout_s, self.retries = float(temperature), float(timeout_s), int(retries)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.what, self.hint = what, hint
        self.requests = self.cache_hits = 0
        scheme, host, _ = _origin(self.base_url)
        if scheme == "http" and not is_loopback(host):
            msg = (f"{what}: {self.base_url} is plain http to a non-loopback host: the API key in "
                   f"${api_key_env} and every message would travel unencrypted; use https")
            log.warning(msg)
            import sys

            print(f"rbench: warning: {msg}", file=sys.stderr, flush=True)
        self._opener = urllib.request.build_opener(_SameOriginAuth)

    def key(self, system: str, message: str) -> str:
        # the URL as logged (a password in its user-info masked): a rotated credential keeps the cached answers
        return fingerprint({"base_url": redact_text(self.base_url, values=False), "model": self.model, "prompt": system,
                            "temperature": self.temperature, "question": message})

    def post(self, system: str, message: str) -> str:
        body = json.dumps({"model": self.model, "temperature": self.temperature, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": message}]}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            register_secret(key)  # masked in every line and file this process writes, whatever the variable's name
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
                raise RetrieverError(f"{self.what}: {self.base_url}/chat/completions answered HTTP {err.code} "
                                     f"({err.reason}); check {self.hint} and the key in ${self.api_key_env}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as err:
                last = err
            except (KeyError, IndexError, TypeError, ValueError) as err:
                raise RetrieverError(f"{self.what}: {self.base_url} did not answer in the chat-completions "
                                     f"format: {err!r}") from None
        raise RetrieverError(f"{self.what}: no answer from {self.base_url} after {self.retries + 1} attempts "
                             f"(timeout {self.timeout_s:g} s): {last}")

    def complete(self, system: str, message: str) -> str:
        """The reply's content, from the cache when this exact request was answered before."""
        path = self.cache_dir / f"{self.key(system, message)}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            try:
                content = json.loads(path.read_text(encoding="utf-8"))["content"]
                self.cache_hits += 1
                return content
            except (ValueError, KeyError, OSError):
                log.warning("%s: unreadable cache entry %s; asking again", self.what, path)
        content = self.post(system, message)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"model": self.model, "question": message, "content": content}), encoding="utf-8")
            os.replace(tmp, path)
        return content


class LLMDecomposer(Decomposer):
    """``decomposer=llm``: sub-questions from an OpenAI-compatible chat endpoint (cached, key never logged)."""

    OPTIONS: ClassVar[Options] = {"max_subqueries": integer(1), "temperature": number(0),
                                  "timeout_s": number(0, open_lo=True), "retries": integer(0)}
    hops = 1

    def __init__(self, *, base_url: str, model: str, prompt: str, api_key_env: str = "OPENAI_API_KEY",
                 max_subqueries: int = 5, temperature: float = 0.0, timeout_s: float = 30, retries: int = 3,
                 cache_dir: str | None = None, fusion: str = "rrf", rrf_k: int = 60) -> None:
        super().__init__(fusion=fusion, rrf_k=rrf_k)
        if not base_url or not model:
            raise RetrieverError("decomposer.base_url and decomposer.model must be set for decomposer=llm")
        self.client = ChatClient(base_url=base_url, model=model, api_key_env=api_key_env, temperature=temperature,
                                 timeout_s=timeout_s, retries=retries, cache_dir=cache_dir)
        self.prompt, self.max_subqueries = prompt, int(max_subqueries)
        self.failures = 0
        self._subs: dict[str, list[str]] = {}

    @property
    def requests(self) -> int:
        return self.client.requests

    @property
    def cache_hits(self) -> int:
        return self.client.cache_hits

    def decompose(self, question: str) -> list[str]:
        content = self.client.complete(self.prompt, question)
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
