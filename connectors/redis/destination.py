"""On-failure destination `redis_stream`: XADD each notice to a stream (DESIGN §7).

Each notice becomes one entry with the fields `body` (the notice as JSON) and `condition`
(the notice's requestContext.condition, to filter on without parsing), so a `redis_streams`
source can read the dead-letter stream back with filters on `body`. `iter_notices` reads
them for `esm redrive` (ids `redis:<entry id>`); redrive leaves the stream as it is (trim it
with `maxlen` or XTRIM).
A retried XADD whose first reply was lost can store a notice twice: notices are at least
once, like records.

Durability: `send` returns after Redis accepted the XADD. With `min_replicas_acked` > 0 it
also waits (WAIT) until that many replicas have the entry and raises DestinationError when
they do not in `replica_timeout_milliseconds`; the server's own AOF settings decide
whether the entry is on disk. `maxlen` caps the stream (approximately, `MAXLEN ~`, unless
`exact_maxlen`): old notices are trimmed, new ones never refused.

Thread safety: redis-py clients use a connection pool, so lane workers may send at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from esm.errors import ConfigError, DestinationError
from esm.interfaces import ConnectorContext
from esm.records import Record


@dataclass(frozen=True, slots=True)
class RedisStreamDestinationSettings:
    stream: str = field(metadata={"doc": "stream key the notices are appended to"})
    url: str = field(default="redis://localhost:6379/0", metadata={
        "doc": "redis://host:port/db, rediss:// for TLS, or unix:///path?db=0"})
    maxlen: int | None = field(default=None, metadata={
        "min": 1, "doc": "keep about this many notices (XADD MAXLEN ~); unset keeps all"})
    exact_maxlen: bool = field(default=False, metadata={
        "doc": "trim to exactly maxlen (slower than the approximate default)"})
    min_replicas_acked: int = field(default=0, metadata={
        "min": 0, "max": 100, "doc": "replicas that must have the notice before send returns"})
    replica_timeout_milliseconds: int = field(default=1000, metadata={
        "min": 1, "max": 60_000, "doc": "how long to WAIT for min_replicas_acked"})
    username_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the Redis ACL username"})
    password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the Redis password"})
    ssl_ca_certs: str | None = field(default=None, metadata={"doc": "CA bundle (rediss://)"})
    ssl_certfile: str | None = field(default=None, metadata={"doc": "client certificate"})
    ssl_keyfile: str | None = field(default=None, metadata={"doc": "client key", "secret": True})
    socket_timeout_seconds: float = field(default=5.0, metadata={
        "min": 0.1, "max": 300, "doc": "per-command socket timeout"})


class RedisStreamDestination:
    """XADDs notices; see the module docstring for durability and trimming."""

    Settings: ClassVar[type] = RedisStreamDestinationSettings

    def __init__(self, settings: RedisStreamDestinationSettings, context: ConnectorContext,
                 client: redis.Redis | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        if not settings.stream:
            raise ConfigError("stream: must be a non-empty stream key")
        self.settings = settings
        self.context = context
        self._owns_client = client is None
        self._client = client or _client_for(settings, os.environ if environ is None else environ)

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        fields: dict[str, bytes | str] = {"body": orjson.dumps(notice)}
        condition = notice.get("requestContext", {}).get("condition")
        if isinstance(condition, str):
            fields["condition"] = condition
        settings = self.settings
        try:
            self._client.xadd(settings.stream, fields,  # type: ignore[arg-type]
                              maxlen=settings.maxlen, approximate=not settings.exact_maxlen)
            if settings.min_replicas_acked:
                self._wait_for_replicas()
        except redis.RedisError as exc:
            raise DestinationError(
                f"redis_stream destination {settings.stream!r}: "
                f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _wait_for_replicas(self) -> None:
        wanted = self.settings.min_replicas_acked
        acked = int(self._client.wait(wanted, self.settings.replica_timeout_milliseconds))
        if acked < wanted:
            raise DestinationError(
                f"redis_stream destination {self.settings.stream!r}: only {acked} of "
                f"{wanted} replicas acknowledged the notice")


def iter_notices(settings: RedisStreamDestinationSettings, environ: Mapping[str, str], *,
                 client: Any = None, page: int = 500) -> Iterator[tuple[str, dict[str, Any]]]:
    """`esm redrive`'s reader (esm.redrive.sources): every notice in the stream, oldest
    first, paged with XRANGE, as (`redis:<entry id>`, notice); an entry whose `body` is not a
    JSON object yields an empty notice (counted as having no payload)."""
    own = client is None
    client = client or _client_for(settings, environ)
    start = "-"
    try:
        while True:
            try:
                entries = client.xrange(settings.stream, min=start, max="+", count=page)
            except redis.RedisError as exc:
                raise DestinationError(f"redis_stream destination {settings.stream!r}: "
                                       f"XRANGE failed: {exc}") from exc
            for entry_id, fields in entries:
                yield f"redis:{_text(entry_id)}", _notice_of(fields)
            if len(entries) < page:
                return
            start = "(" + _text(entries[-1][0])
    finally:
        if own:
            client.close()


def _notice_of(fields: Mapping[Any, Any]) -> dict[str, Any]:
    body = fields.get(b"body", fields.get("body"))
    try:
        notice = orjson.loads(body) if body is not None else None
    except orjson.JSONDecodeError:
        notice = None
    return notice if isinstance(notice, dict) else {}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _client_for(settings: RedisStreamDestinationSettings,
                environ: Mapping[str, str]) -> redis.Redis:
    """No I/O: redis-py connects on the first command. Credentials from the named env vars."""
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": settings.socket_timeout_seconds,
        # A few quick retries ride over a failover; after that the lane stops and the core
        # retries the write itself (DESIGN §7).
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
    }
    for key, var in (("username", settings.username_env), ("password", settings.password_env)):
        if var is not None:
            if var not in environ:
                raise ConfigError(f"{key}_env: environment variable {var} is not set")
            options[key] = environ[var]
    if settings.url.startswith("rediss://"):
        for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if getattr(settings, name) is not None:
                options[name] = getattr(settings, name)
    return redis.Redis.from_url(settings.url, **options)
