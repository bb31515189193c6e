"""The `redis` window store (`window_state: {type: redis, url: …}`): tumbling-window
documents of a source that keeps no windows itself (Kafka), in one Redis hash per mapping
(`<key_prefix><mapping>`, field = lane), shared by every replica, so a partition's window
moves with the partition at a rebalance. A document is written (HSET) before the Kafka
offset it covers is committed; Redis persistence (AOF with `appendfsync always`) decides
how durable that is."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
import redis

from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext


@dataclass(frozen=True, slots=True)
class RedisWindowStoreSettings:
    url: str = field(default="redis://localhost:6379/0", metadata={
        "doc": "redis://host:port/db or rediss:// for TLS"})
    key_prefix: str = field(default="esm:windows:", metadata={
        "doc": "hash key prefix; the mapping name follows"})
    username_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the Redis ACL username"})
    password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the Redis password"})
    socket_timeout_seconds: float = field(default=5.0, metadata={"min": 0.1, "max": 300})


class RedisWindowStore:
    """Window documents in a Redis hash; the client connects on first use."""

    Settings: ClassVar[type[RedisWindowStoreSettings]] = RedisWindowStoreSettings

    def __init__(self, settings: RedisWindowStoreSettings, context: ConnectorContext) -> None:
        self.key = f"{settings.key_prefix}{context.mapping}"
        self._settings = settings
        self._credentials = {name: os.environ[var] for name, var in (
            ("username", settings.username_env), ("password", settings.password_env))
            if var is not None and var in os.environ}
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def _redis(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                self._client = redis.Redis.from_url(
                    self._settings.url, socket_timeout=self._settings.socket_timeout_seconds,
                    **self._credentials)
            return self._client

    def load_window(self, lane: str) -> Mapping[str, Any] | None:
        try:
            saved = self._redis().hget(self.key, lane)
        except redis.RedisError as exc:
            raise SourceUnavailable(f"window store {self.key}: {exc}") from exc
        return None if saved is None else dict(orjson.loads(saved))

    def save_window(self, lane: str, document: Mapping[str, Any]) -> None:
        try:
            self._redis().hset(self.key, lane, orjson.dumps(document))
        except redis.RedisError as exc:
            raise SourceUnavailable(f"window store {self.key}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
