"""Logging setup: text or JSON lines, one event a line, with mapping/lane context and
secrets redacted (DESIGN §9, STYLE rule 9).

Context: `log_context(mapping=..., lane=...)` binds fields for the current thread (a
contextvar); the supervisor binds `mapping` for its own thread. Threads named by esm
(`esm-mapping-NAME`, `esm-reader-NAME`, `esm-lane-NAME_N`, `esm-admin-NAME`) get `mapping`
from their name when nothing is bound. Each line then carries `mapping=` / `lane=` (text)
or keys (JSON).

Redaction: every secret value from the configuration (fields marked secret, the server's
auth token) is replaced by `***` in messages and tracebacks, as are credentials in URLs
(`scheme://user:password@host`), `Authorization: Bearer …` and `password=…`-style pairs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import Any

# Default None (not a shared dict); readers treat None as "nothing bound".
_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "esm_log_context", default=None)
_THREAD_PATTERNS = (re.compile(r"^esm-(?:mapping|reader|admin)-(?P<m>.+)$"),
                    re.compile(r"^esm-lane-(?P<m>.+)_\d+$"))
_PATTERNS = (
    (re.compile(r"(?P<k>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(?=@)", re.I), r"\g<k>***"),
    (re.compile(r"(?P<k>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\g<k>***"),
    (re.compile(r"(?P<k>\b(?:password|passwd|secret|token|api[_-]?key|auth_token)"
                r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;}]+", re.I), r"\g<k>***"),
)
_CONTEXT_KEYS = ("mapping", "lane")


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Bind context fields (e.g. mapping, lane) to log lines of the current thread."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: str(v) for k, v in values.items()}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Adds `mapping` and `lane` attributes (possibly empty) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _CONTEXT.get() or {}
        mapping = bound.get("mapping") or _mapping_from_thread(record.threadName or "")
        record.mapping = mapping or ""
        record.lane = bound.get("lane", "")
        return True


def _mapping_from_thread(name: str) -> str | None:
    for pattern in _THREAD_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group("m")
    return None


class Redactor:
    """Replaces secret values and credential-looking text with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole; very short
        # values would blank out ordinary words, so they are left to the patterns.
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these too (a reload may bring new secrets; old ones stay redacted)."""
        known = set(self.secrets) | {str(s) for s in secrets if len(s) >= 4}
        self.secrets = sorted(known, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class JsonFormatter(logging.Formatter):
    """{"time", "level", "logger", "thread", "mapping"?, "lane"?, "message"[, "exc"]}."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
        }
        for key in _CONTEXT_KEYS:
            if getattr(record, key, ""):
                entry[key] = getattr(record, key)
        entry["message"] = self.redact(record.getMessage())
        if record.exc_info:
            entry["exc"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """`time LEVEL thread logger [mapping=… lane=…]: message`, secrets redacted."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(threadName)s %(name)s%(context)s: "
                         "%(message)s")
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{key}={getattr(record, key)}" for key in _CONTEXT_KEYS
                           if getattr(record, key, ""))
        record.context = f" [{context}]" if context else ""
        return self.redact(super().format(record))


def secrets_in(value: Any) -> list[str]:
    """Every secret string inside a parsed configuration (esm.config.schema.SecretStr values and the
    server's auth token), found by walking its dataclasses, tuples and dicts."""
    from esm.config.schema import SecretStr

    found: list[str] = []
    _walk(value, found, SecretStr, depth=0)
    server = getattr(value, "server", None)
    token = getattr(server, "auth_token", None)
    if token:
        found.append(str(token))
    return found


def _walk(value: Any, found: list[str], secret_type: type, depth: int) -> None:
    if depth > 12:
        return
    if isinstance(value, secret_type):
        found.append(str(value))
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            _walk(getattr(value, f.name), found, secret_type, depth + 1)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _walk(item, found, secret_type, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found, secret_type, depth + 1)


def configure(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = (),
              stream: Any = None) -> Redactor:
    """Send every log line to stderr (or `stream`) in `fmt`; returns the redactor, so
    secrets a reload brings can be added."""
    handler = logging.StreamHandler(stream or sys.stderr)
    redact = Redactor(secrets)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kafka", "botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return redact
