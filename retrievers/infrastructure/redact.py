"""One redaction rule for every value that leaves the process: MLflow params, tags and descriptions, config
artifacts and Hydra's run-folder files, console and log lines, error messages, reports and audit outputs.

What counts as a secret:

- the password of a URI's user-info (``http://alice:PASSWORD@host:5000`` -> ``http://alice:***@host:5000``,
  ``postgresql://u:PASSWORD@db/mlflow``); a user-info without a password may itself be a token
  (``https://TOKEN@host``) and is replaced whole (``https://***@host``). The host, port and path stay, so two
  servers are still told apart;
- a query-string parameter whose name says secret (``?token=...``, ``&X-Amz-Signature=...``);
- a config key whose name says secret (``password``, ``passwd``, ``token``, ``secret``, ``api_key``,
  ``authorization``, ``credential`` ..., as a whole word of the key: ``max_tokens`` and ``tokenizer`` are not
  secret; a key ending in ``_env`` names an environment variable and is not secret either);
- the value of any environment variable whose name says secret (``MLFLOW_TRACKING_PASSWORD``,
  ``MLFLOW_TRACKING_TOKEN``, ``OPENAI_API_KEY``, ``AWS_SECRET_ACCESS_KEY`` ...), wherever it appears in a text.
  Those variables are read by MLflow and the LLM client themselves and are never logged.

Redaction never changes what is computed: the harness keeps the real values for the servers it talks to,
and a run's fingerprint is computed from the redacted config (a rotated password is the same run).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Mapping

MASK = "***"

#: words that make a config key, a query parameter or an environment variable secret
SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials",
                          "authorization", "apikey", "cookie"})
#: words that do as the key's last word only (``hf_token``, ``X-Amz-Signature``; not ``token_budget``)
SECRET_LAST_WORDS = frozenset({"token", "signature", "sig", "sas"})  # not "pwd": $PWD is the working folder
#: word pairs that do (``api_key``, ``access_key``, ``private_key``, ``client_secret`` is covered by ``secret``)
SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("auth", "token"),
                          ("session", "key"), ("account", "key"), ("x", "api")})
#: MLflow's own credential variables (secret whatever the word rule says)
MLFLOW_CREDENTIAL_VARS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_GATEWAY_TOKEN",
                          "DATABRICKS_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCESS_KEY",
                          "AZURE_STORAGE_CONNECTION_STRING")
#: environment variables whose values are never treated as secrets, although their names match the word rule
#: (a user name, paths to certificate or credential files, a flag)
_NOT_SECRET_VARS = frozenset({"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_CLIENT_CERT_PATH",
                              "GOOGLE_APPLICATION_CREDENTIALS", "TOKENIZERS_PARALLELISM"})
_MIN_SECRET_LEN = 8  # shorter values are not scrubbed from texts: they would mask ordinary words
_TRIVIAL = frozenset({"true", "false", "yes", "no", "none", "null", "disabled", "enabled"})


def _words(name: str) -> list[str]:
    """``mlflowTrackingPassword`` / ``MLFLOW_TRACKING_PASSWORD`` / ``api-key`` -> lower-case words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


@functools.lru_cache(maxsize=4096)
def secret_name(name: str) -> bool:
    """Whether a key, parameter or variable name says it holds a secret (``retriever.api_key``: yes;
    ``decomposer.api_key_env`` names a variable: no; ``chunker.max_tokens``: no)."""
    words = _words(str(name).rsplit(".", 1)[-1])
    if not words or words[-1] == "env":
        return False
    if words[-1] in SECRET_LAST_WORDS or any(w in SECRET_WORDS for w in words):
        return True
    return any(pair in SECRET_PAIRS for pair in zip(words, words[1:]))


_REGISTERED: set[str] = set()


def register(value: str | None) -> None:
    """A secret this process read from somewhere the name rule cannot see (the LLM key from the variable that
    ``api_key_env`` names): masked in every text from now on."""
    if value and len(value) >= _MIN_SECRET_LEN and value.lower() not in _TRIVIAL:
        _REGISTERED.add(value)


def _snapshot(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of the environment that another thread (MLflow's telemetry) may change while it is read."""
    for _ in range(10):
        try:
            keys = list(env)
            break
        except RuntimeError:  # changed size during iteration
            continue
    else:
        return {}
    out = {}
    for key in keys:
        value = env.get(key)
        if value is not None:
            out[key] = value
    return out


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the environment's secret variables and of registered secrets, longest first (so a value
    containing another is masked whole)."""
    env = _snapshot(os.environ) if environ is None else environ
    out = {v for k, v in env.items()
           if v and len(v) >= _MIN_SECRET_LEN and v.lower() not in _TRIVIAL and k not in _NOT_SECRET_VARS
           and (k in MLFLOW_CREDENTIAL_VARS or secret_name(k))} | _REGISTERED
    return sorted(out, key=len, reverse=True)


# scheme://user[:password]@host  -- the user-info ends at the last '@' before the host's '/', '?', '#' or space
# (Hydra's override syntax escapes the colons: ``http\\://alice\\:pw@host``)
# (a URL that went through a file-system path has one slash left: ``https:/alice:pw@host``)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*\\*:/{1,2})(?P<info>[^\s/?#'\"<>]+)@(?=[^\s/?#@'\"<>])")
# ?name=value / &name=value / ;name=value in a URI's query string
_QUERY = re.compile(r"(?P<sep>[?&;])(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&#\s'\"<>]*)")
# name: value / name=value / "name": "value" for secret-named keys (YAML, Hydra overrides, JSON, log lines): the
# key is found first and its value read after it, so a key inside another's value is seen too
# ("override_dirname: +tracking.api_token=...")
#: an HTTP authentication scheme: its credentials follow it after a space (``Authorization: Basic dXNlcjpwdw==``)
_AUTH_SCHEME = r"(?i:basic|bearer|digest|token|negotiate|ntlm|hoba|mutual|apikey|aws4-hmac-sha256)\b"
#: HTTP headers that carry credentials: read as settings in free text too (a server's echoed request)
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "x-auth-token",
                                "cookie", "set-cookie"})
_KEY = re.compile(r"[\"']?(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)[\"']?[ \t]*(?P<op>[:=])[ \t]*")
#: a value: quoted inside a quoted string first (YAML's doubled '' as Hydra writes an override into hydra.yaml; JSON's
#: \"), then quoted, an auth scheme and its credentials, or bare
_VALUE = re.compile(r"''(?:[^'\n]|'(?!'))+''|\\\"[^\"\n]*\\\"|\"[^\"\n]*\"|'[^'\n]*'|" + _AUTH_SCHEME + r"[ \t]+[^\s,;'\"}\]]+|[^\s,}\]=&;'\"\n]+")


def _mask_info(m: re.Match) -> str:
    user, sep, _ = m.group("info").partition(":")  # an escaped colon keeps its backslash at the user's end
    return f"{m.group('scheme')}{user}:{MASK}@" if sep else f"{m.group('scheme')}{MASK}@"


def redact_uri(text: str) -> str:
    """The user-info password and secret-named query parameters of every URI in ``text`` masked."""
    text = _USERINFO.sub(_mask_info, text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m.group('sep')}{m.group('name')}={MASK}" if secret_name(m.group("name"))
                          and m.group("value") else m.group(0), text)
    return text


def _mask_assignments(text: str, config_file: bool) -> str:
    out: list[str] = []
    pos = 0
    for m in _KEY.finditer(text):
        name = m.group("name")
        if m.start() < pos or not secret_name(name):
            continue
        if m.group("op") == ":" and not config_file and "." not in name and "_" not in name \
                and name.lower() not in CREDENTIAL_HEADERS:
            continue  # "Password: at least 12 characters" in a document is prose, not a config key
        v = _VALUE.match(text, m.end())
        if v is None:
            continue
        value = v.group(0)
        if value in ("null", "None", "''", '""', f"'{MASK}'", f'"{MASK}"') or value.startswith(("${", MASK)):
            continue  # nothing secret there, or an interpolation that names where the value comes from
        # quoted as the value was (an escaped quote stays escaped, so the file stays valid); a bare *** would be a
        # YAML alias
        quote = value[:2] if value[:2] in ("''", '\\"') else value[0] if value[0] in "\"'" else "'"
        out += [text[pos:m.end()], f"{quote}{MASK}{quote}"]
        pos = v.end()
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str, *, environ: Mapping[str, str] | None = None, values: bool = True,
                config_file: bool = False) -> str:
    """Every rule applied to free text: console lines, error messages, reports. In free text ``name: value`` is
    a setting only when the name is shaped like a config key or variable (``decomposer.api_key``,
    ``MLFLOW_TRACKING_PASSWORD``); ``name=value`` always is. ``config_file=True`` (YAML and JSON config files):
    every ``name: value`` is. ``values=False``: only the rules that read the text itself (URIs, secret-named
    keys), not the secret values of this process's environment -- what a fingerprint uses, so it is the same in
    every environment."""
    if not text:
        return text
    for value in secret_values(environ) if values else ():
        if value in text:
            text = text.replace(value, MASK)
    if ":/" in text or "=" in text:
        text = redact_uri(text)
    if ":" in text or "=" in text:
        text = _mask_assignments(text, config_file)
    return text


def redact_value(key: str, value: Any, *, values: bool = True) -> Any:
    """One config value: masked whole under a secret-named key, else its text redacted (strings only)."""
    if secret_name(key) and value not in (None, "", MASK) and not (isinstance(value, str) and value.startswith("${")):
        return MASK
    if isinstance(value, str):
        return redact_text(value, values=values)
    return value


def redact_config(cfg: Any, key: str = "", *, values: bool = True) -> Any:
    """A plain (resolved) config tree with every secret masked; the input is not changed. ``values``: as for
    :func:`redact_text`."""
    if isinstance(cfg, Mapping):
        return {k: redact_config(v, str(k), values=values) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [redact_config(v, key, values=values) for v in cfg]
    return redact_value(key, cfg, values=values)


class RedactingStream:
    """A text stream (stdout, stderr) whose writes are redacted before they reach the real stream. Progress
    bars and ``isatty`` checks see the real stream's properties."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact_text(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _redacting_record_factory(base: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> Any:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call: leave it to logging's own error handling
            return record
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return record

    factory._rbench_redacting = True  # type: ignore[attr-defined]
    return factory


def install() -> None:
    """Redact the console (stdout, stderr) and every log record of this process. Idempotent; called by the
    entry points before anything is printed or logged."""
    import logging
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))
    base = logging.getLogRecordFactory()
    if not getattr(base, "_rbench_redacting", False):
        logging.setLogRecordFactory(_redacting_record_factory(base))


def redact_file(path: Any) -> bool:
    """Rewrite a text file with its secrets masked (atomically; files without secrets are left alone).
    Returns whether it changed."""
    from pathlib import Path

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    clean = redact_text(text, config_file=True)
    if clean == text:
        return False
    tmp = p.with_name(f".{p.name}.redact-{os.getpid()}")
    tmp.write_text(clean, encoding="utf-8")
    os.replace(tmp, p)
    return True
