"""redis_stream destination: one XADD per notice, trimming, errors (DESIGN §7)."""

from __future__ import annotations

import threading

import fakeredis
import orjson
import pytest

from connectors.redis.destination import (
    RedisStreamDestination,
    RedisStreamDestinationSettings,
)
from esm.clock import FakeClock
from esm.errors import ConfigError, DestinationError
from esm.interfaces import ConnectorContext
from tests.servers.common import free_port

NOTICE = {"requestContext": {"condition": "MaxDeliveriesExceeded", "approximateInvokeCount": 3},
          "version": "1.0", "RedisStreamBatchInfo": {"batchSize": 1}}


def context() -> ConnectorContext:
    return ConnectorContext("m", threading.Event(), FakeClock())


def destination(client: fakeredis.FakeRedis, **overrides: object) -> RedisStreamDestination:
    values: dict[str, object] = {"stream": "dlq"}
    values.update(overrides)
    settings = RedisStreamDestinationSettings(**values)  # type: ignore[arg-type]
    return RedisStreamDestination(settings, context(), client=client)


def test_send_appends_the_notice_as_json_body_with_its_condition() -> None:
    client = fakeredis.FakeRedis()
    destination(client).send(NOTICE, [])
    [(_, fields)] = client.xrange("dlq")
    assert orjson.loads(fields[b"body"]) == NOTICE
    assert fields[b"condition"] == b"MaxDeliveriesExceeded"


def test_maxlen_trims_old_notices() -> None:
    client = fakeredis.FakeRedis()
    dest = destination(client, maxlen=2, exact_maxlen=True)
    for n in range(5):
        dest.send({"n": n}, [])
    bodies = [orjson.loads(f[b"body"]) for _, f in client.xrange("dlq")]
    assert bodies == [{"n": 3}, {"n": 4}]


def test_unreachable_redis_raises_destination_error() -> None:
    settings = RedisStreamDestinationSettings(
        stream="dlq", url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout_seconds=0.5)
    dest = RedisStreamDestination(settings, context())
    with pytest.raises(DestinationError, match="redis_stream destination 'dlq'"):
        dest.send(NOTICE, [])


def test_missing_password_variable_is_a_config_error() -> None:
    settings = RedisStreamDestinationSettings(stream="dlq", password_env="DLQ_PASS")
    with pytest.raises(ConfigError, match="password_env: environment variable DLQ_PASS"):
        RedisStreamDestination(settings, context(), environ={})


def test_empty_stream_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="stream: must be a non-empty"):
        RedisStreamDestination(RedisStreamDestinationSettings(stream=""), context())
