"""Where `esm redrive` reads notices from: a mapping's on-failure destination.

Each notice gets a stable id, so a redrive interrupted half-way skips what it already did:
- `file`: the SHA-256 of the notice's canonical JSON (line numbers move when files rotate);
- `redis_stream`: the stream entry id (notices are XADDed with field `body`).

The connectors own the formats, so the readers are reached through their import strings
(like esm.registry), never imported by the core (DESIGN §2). Any destination connector can
support redrive by defining, in its module, `iter_notices(settings, environ)` yielding
`(notice_id, notice)` pairs, oldest first; that hook is used before the built-in readers.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from esm.config_types import MappingConfig
from esm.errors import ConfigError
from esm.registry import import_object

FILE_READER = "connectors.destinations.file:read_notices"
REDIS_CLIENT = "connectors.destinations.redis_stream:_client_for"
SUPPORTED = ("file", "redis_stream")
_REDIS_PAGE = 500


@dataclass(frozen=True, slots=True)
class NoticeEntry:
    id: str
    notice: dict[str, Any]


def notice_id(notice: Mapping[str, Any]) -> str:
    canonical = json.dumps(notice, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def file_notices(path: str) -> Iterator[NoticeEntry]:
    read_notices = import_object(FILE_READER)
    for notice in read_notices(path):
        yield NoticeEntry(notice_id(notice), notice)


def redis_notices(client: Any, stream: str) -> Iterator[NoticeEntry]:
    """Every entry of `stream`, oldest first, paged with XRANGE; `client` is a redis-py
    client (duck-typed: `xrange(name, min, max, count)`)."""
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, max="+", count=_REDIS_PAGE)
        for entry_id, fields in entries:
            key = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            body = fields.get(b"body", fields.get("body"))
            try:
                notice = json.loads(body) if body is not None else None
            except ValueError:
                notice = None
            yield NoticeEntry(f"redis:{key}", notice if isinstance(notice, dict) else {})
        if len(entries) < _REDIS_PAGE:
            return
        start = "(" + (entries[-1][0].decode() if isinstance(entries[-1][0], bytes)
                       else str(entries[-1][0]))


def notices_for(mapping: MappingConfig, env: Mapping[str, str],
                file_override: str | None = None) -> Iterator[NoticeEntry]:
    """The notices of `mapping`'s on-failure destination (or of the file given)."""
    if file_override is not None:
        return file_notices(file_override)
    spec = mapping.on_failure
    if spec is None:
        raise ConfigError(f"mapping {mapping.name!r} has no on-failure destination; "
                          "pass --file to redrive a notice file")
    hook = getattr(sys.modules.get(spec.cls.__module__), "iter_notices", None)
    if callable(hook):
        return (NoticeEntry(str(nid), dict(notice)) for nid, notice in hook(spec.settings, env))
    if spec.type == "file":
        return file_notices(spec.settings.path)
    if spec.type == "redis_stream":
        client = import_object(REDIS_CLIENT)(spec.settings, env)
        return redis_notices(client, spec.settings.stream)
    raise ConfigError(f"redrive from a {spec.type!r} destination is not supported yet "
                      f"(supported: {', '.join(SUPPORTED)}, or a connector module defining "
                      "iter_notices(settings, environ))")
