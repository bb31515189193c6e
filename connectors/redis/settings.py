"""Settings of the `redis_streams` source and the checks the field metadata cannot express.

Credentials never sit in the settings: `username_env` / `password_env` name environment
variables that the source reads once, in its constructor (STYLE rule 4). A password written
into `url` works too but is discouraged; it is never logged nor put in an eventSourceARN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")
URL_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class RedisStreamsSettings:
    streams: tuple[str, ...] = field(metadata={
        "min_items": 1, "doc": "stream keys to read; each key is one lane"})
    url: str = field(default="redis://localhost:6379/0", metadata={
        "doc": "redis://host:port/db, rediss:// for TLS, or unix:///path?db=0"})
    consumer_group: str = field(default="esm", metadata={
        "doc": "consumer group, created on every stream if missing"})
    consumer_name: str | None = field(default=None, metadata={
        "doc": "consumer name, unique per replica; default <hostname>-<pid>"})
    starting_position: str = field(default="TRIM_HORIZON", metadata={
        "choices": list(STARTING_POSITIONS),
        "doc": "where a new group starts: TRIM_HORIZON (id 0) or LATEST ($)"})
    block_milliseconds: int = field(default=1000, metadata={
        "min": 0, "max": 60_000, "doc": "longest XREADGROUP block; the poll timeout caps it"})
    visibility_timeout_seconds: int = field(default=30, metadata={
        "min": 1, "max": 43_200,
        "doc": "idle time after which a pending entry is reclaimed and delivered again"})
    extend_visibility: bool = field(default=True, metadata={
        "doc": "keep the entries this replica holds (read ahead, waiting for a lane or for "
               "the target) from going idle, so that no other replica reclaims them while "
               "they wait; false: an entry held past the timeout can reach two replicas"})
    max_deliveries: int | None = field(default=None, metadata={
        "min": 1, "max": 1000,
        "doc": "failed attempts at the target after which an entry goes to the on-failure "
               "destination (deliveries lost with a crashed replica do not count)"})
    body_field: str = field(default="body", metadata={
        "doc": "entry field shown as the event's `body` and filtered like an SQS body"})
    ordering_key_field: str | None = field(default=None, metadata={
        "doc": "entry field whose value keeps order when parallelization_factor > 1 "
               "(entries without it share the stream's own slot)"})
    username_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the Redis ACL username"})
    password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the Redis password"})
    ssl_ca_certs: str | None = field(default=None, metadata={
        "doc": "CA bundle for rediss:// (default: the system's)"})
    ssl_certfile: str | None = field(default=None, metadata={
        "doc": "client certificate for rediss:// mutual TLS"})
    ssl_keyfile: str | None = field(default=None, metadata={
        "doc": "client key for rediss:// mutual TLS", "secret": True})
    socket_timeout_seconds: float = field(default=5.0, metadata={
        "min": 0.1, "max": 300, "doc": "per-command socket timeout; must exceed the block time"})


def settings_problems(settings: RedisStreamsSettings) -> list[str]:
    """Rules across fields of the source settings, as `key: problem` strings."""
    problems: list[str] = []
    if not settings.streams:
        problems.append("streams: must list at least one stream key")
    for i, stream in enumerate(settings.streams):
        if not isinstance(stream, str) or not stream:
            problems.append(f"streams[{i}]: must be a non-empty string")
    if len(set(settings.streams)) != len(settings.streams):
        problems.append("streams: must not list a stream twice")
    if settings.starting_position not in STARTING_POSITIONS:
        problems.append(f"starting_position: must be one of {', '.join(STARTING_POSITIONS)}")
    if not settings.consumer_group:
        problems.append("consumer_group: must be a non-empty string")
    if settings.consumer_name == "":
        problems.append("consumer_name: must be a non-empty string or omitted")
    problems.extend(_url_problems(settings))
    if settings.socket_timeout_seconds * 1000 <= settings.block_milliseconds:
        # redis-py applies the socket timeout to blocking reads too: a block longer than it
        # would turn every idle poll into a TimeoutError.
        problems.append("socket_timeout_seconds: must be longer than block_milliseconds")
    return problems


def mapping_problems(settings: RedisStreamsSettings, mapping_data: Mapping[str, Any]) -> list[str]:
    """Every rule, as problems relative to the mapping (`source.<key>: problem`), the form
    `check_mapping` hands back to the config loader.

    parallelization_factor > 1 needs `ordering_key_field` (the key to keep order by).
    Like SQS (ESM-SPEC §1.2, checklist 40), a function timeout longer than the visibility
    timeout is refused: another replica would reclaim and deliver entries still in flight.
    """
    problems = [f"source.{problem}" for problem in settings_problems(settings)]
    factor = mapping_data.get("parallelization_factor", 1)
    if isinstance(factor, int) and factor > 1 and not settings.ordering_key_field:
        problems.append("source.ordering_key_field: required with parallelization_factor "
                        f"{factor}: the entry field whose value keeps order (e.g. the "
                        "order id); without it a stream has one key and runs one batch")
    target = mapping_data.get("target")
    timeout = target.get("timeout_seconds") if isinstance(target, Mapping) else None
    if isinstance(timeout, int | float) and timeout > settings.visibility_timeout_seconds:
        problems.append(
            f"source.visibility_timeout_seconds: must be at least the target's timeout_seconds "
            f"({timeout:g})")
    return problems


def _url_problems(settings: RedisStreamsSettings) -> list[str]:
    try:
        parts = urlsplit(settings.url)
    except ValueError as exc:
        return [f"url: not a valid URL ({exc})"]
    if parts.scheme not in URL_SCHEMES:
        return [f"url: scheme must be one of {', '.join(s + '://' for s in URL_SCHEMES)}"]
    tls_keys = [name for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
                if getattr(settings, name) is not None]
    if tls_keys and parts.scheme != "rediss":
        return [f"{tls_keys[0]}: needs a rediss:// url"]
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        return ["ssl_certfile: ssl_certfile and ssl_keyfile go together"]
    return []
