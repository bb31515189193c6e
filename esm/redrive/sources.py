"""Where `esm redrive` reads notices from: a mapping's on-failure destination.

Each notice gets a stable id, so a redrive interrupted half-way skips what it already did.
The destination connectors own their formats, so their readers are reached through the
connector's module (like esm.registry), never imported by the core (DESIGN §2): any
destination connector supports redrive by defining, in its module,

    iter_notices(settings, environ[, *, mapping]) -> Iterator[tuple]

yielding `(notice_id, notice)` or `(notice_id, notice, ack)`, oldest first. `mapping` (the
mapping's name) is passed only when the function accepts it. `ack()` is called once the
notice needs no replay any more (replayed now, or in an earlier run): destinations that
consume what they read (SQS delete, Kafka commit) remove it then, never before. A generator
is closed when the run ends or is interrupted, so it can give back what it holds.

The `file` destination is read here (its ids: the SHA-256 of the notice's canonical JSON,
as line numbers move when files rotate); the others through their hooks.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from esm.config.types import MappingConfig
from esm.errors import ConfigError
from esm.registry import import_object

FILE_READER = "connectors.file.destination:read_notices"


@dataclass(frozen=True, slots=True)
class NoticeEntry:
    """One notice to redrive; `ack`, when given, removes it from its destination."""

    id: str
    notice: dict[str, Any]
    ack: Callable[[], None] | None = None


def notice_id(notice: Mapping[str, Any]) -> str:
    canonical = json.dumps(notice, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def file_notices(path: str) -> Iterator[NoticeEntry]:
    read_notices = import_object(FILE_READER)
    for notice in read_notices(path):
        yield NoticeEntry(notice_id(notice), notice)


def hook_entries(items: Iterable[tuple[Any, ...]]) -> Iterator[NoticeEntry]:
    """`iter_notices` tuples as entries; the source generator is closed with this one."""
    iterator = iter(items)
    try:
        for item in iterator:
            ack = item[2] if len(item) > 2 else None
            notice = item[1] if isinstance(item[1], dict) else {}
            yield NoticeEntry(str(item[0]), notice, ack)
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            close()


def notices_for(mapping: MappingConfig, env: Mapping[str, str],
                file_override: str | None = None) -> Iterable[NoticeEntry]:
    """The notices of `mapping`'s on-failure destination (or of the file given). Files are
    read up front (a known total for the progress bar); hooks are streamed, as queues must
    be (an SQS FIFO group hands out more only after the earlier notices are deleted)."""
    if file_override is not None:
        return list(file_notices(file_override))
    spec = mapping.on_failure
    if spec is None:
        raise ConfigError(f"mapping {mapping.name!r} has no on-failure destination; "
                          "pass --file to redrive a notice file")
    hook = getattr(sys.modules.get(spec.cls.__module__), "iter_notices", None)
    if callable(hook):
        extra = {"mapping": mapping.name} if _accepts_mapping(hook) else {}
        return hook_entries(hook(spec.settings, env, **extra))
    if spec.type == "file":
        return list(file_notices(spec.settings.path))
    raise ConfigError(f"redrive from a {spec.type!r} destination is not supported "
                      "(its connector module defines no iter_notices(settings, environ); "
                      "pass --file to redrive a notice file)")


def _accepts_mapping(hook: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        return False
    return "mapping" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
