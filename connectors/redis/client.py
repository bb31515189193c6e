"""Build the redis-py client for the `redis_streams` source from its settings.

No I/O here: redis-py connects on the first command. Credentials come from the environment
variables the settings name, read once by the caller's constructor and passed in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.redis.settings import RedisStreamsSettings
from esm.errors import ConfigError

# Connection errors retry once, at once: a pooled connection that died with a server restart
# is replaced without failing the poll. Longer outages surface as SourceUnavailable and the
# supervisor reconnects with backoff (DESIGN §2).
_ONE_QUICK_RETRY = Retry(NoBackoff(), 1)


def read_credentials(settings: RedisStreamsSettings,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`username` / `password` from the environment variables named in the settings."""
    env = os.environ if environ is None else environ
    credentials: dict[str, str] = {}
    for key in ("username", "password"):
        var = getattr(settings, f"{key}_env")
        if var is None:
            continue
        value = env.get(var)
        if value is None:
            raise ConfigError(f"{key}_env: environment variable {var!r} is not set")
        credentials[key] = value
    return credentials


def build_client(settings: RedisStreamsSettings, credentials: Mapping[str, str]) -> redis.Redis:
    """A client for `settings.url` that returns bytes (esm decodes fields itself)."""
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": settings.socket_timeout_seconds,
        "socket_connect_timeout": min(settings.socket_timeout_seconds, 5.0),
        "retry": _ONE_QUICK_RETRY,
        "health_check_interval": 30,
        **credentials,
    }
    if settings.url.startswith("rediss://"):
        tls = {"ssl_ca_certs": settings.ssl_ca_certs, "ssl_certfile": settings.ssl_certfile,
               "ssl_keyfile": settings.ssl_keyfile}
        options.update({k: v for k, v in tls.items() if v is not None})
    return redis.Redis.from_url(settings.url, **options)


def stream_reply_pairs(response: Any) -> Any:
    """An XREADGROUP wire reply, as the source's RedisPipe reads it (no redis-py parsing:
    the source decodes each entry once anyway), as [(stream, [[id, [name, value, ...]],
    ...]), ...], from RESP2 or RESP3."""
    if not response:
        return []
    if isinstance(response, dict):  # RESP3 (redis-py's default): {stream: entries}
        return list(response.items())
    return response  # RESP2: [[stream, entries], ...]
