# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
"""Contract: the `window_state` stores (Kafka tumbling windows) against their real servers
— SQLite file, redis-server, moto's DynamoDB. Every store keeps one document per (mapping,
lane), the last save wins, another instance (a restart, another replica after a
rebalance) reads it, and mappings do not see each other's windows."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.aws.dynamodb_windows import DynamoDBWindowStore, DynamoDBWindowStoreSettings
from connectors.file.window_store import SqliteWindowStore, SqliteWindowStoreSettings
from connectors.redis.window_store import RedisWindowStore, RedisWindowStoreSettings
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

Factory = Callable[[str], Any]


def context(mapping: str) -> ConnectorContext:
    return ConnectorContext(mapping, threading.Event(), SystemClock())


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "sqlite":
        settings: Any = SqliteWindowStoreSettings(str(tmp_path / "windows.sqlite"))
        return lambda mapping: SqliteWindowStore(settings, context(mapping))
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        settings = RedisWindowStoreSettings(url=server.url,
                                            key_prefix=f"w-{uuid.uuid4().hex[:6]}:")
        return lambda mapping: RedisWindowStore(settings, context(mapping))
    moto: MotoServer = request.getfixturevalue("moto_server")
    settings = DynamoDBWindowStoreSettings(
        table=f"windows-{uuid.uuid4().hex[:8]}", endpoint_url=moto.endpoint_url,
        region="us-east-1", access_key_id="test", secret_access_key="test")
    return lambda mapping: DynamoDBWindowStore(settings, context(mapping))


def test_a_saved_window_is_read_back_by_another_instance_per_mapping_and_lane(
        make_store: Factory) -> None:
    # Given a store that saved two versions of a lane's window
    first = make_store("orders")
    assert first.load_window("orders-0") is None
    first.save_window("orders-0", {"start": 0.0, "end": 60.0, "state": {"n": 1}})
    latest = {"start": 0.0, "end": 60.0, "state": {"n": 2, "keys": ["a"]}, "lastPosition": "7"}
    first.save_window("orders-0", latest)
    first.close()
    # When another instance (a restart, another replica) reads it
    again, other = make_store("orders"), make_store("billing")
    try:
        # Then it gets the last version, for that lane and mapping only
        assert again.load_window("orders-0") == latest
        assert again.load_window("orders-1") is None
        assert other.load_window("orders-0") is None
    finally:
        again.close()
        other.close()
