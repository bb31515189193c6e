"""`esm redrive --to source` into a Redis Streams source (real redis-server): entries read
by the source and dead-lettered to a redis_stream destination are XADDed back with the same
fields, binary ones included, and the source reads them again; a re-run adds nothing."""
# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
import redis

from connectors.redis.destination import (
    RedisStreamDestination,
    RedisStreamDestinationSettings,
)
from esm.cli import main
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.contract.test_redis_streams_contract import drain, open_source
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_dead_lettered_entries_go_back_to_their_stream_with_their_fields(
        tmp_path: Path, redis_server: RedisServer) -> None:
    # Given two entries (one with a binary field) read by the source and dead-lettered
    stream, dead = f"orders-{uuid.uuid4().hex[:8]}", f"dead-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server.url)
    client.xadd(stream, {"body": '{"id": 1}', "kind": "order"})
    client.xadd(stream, {"body": '{"id": 2}', "blob": b"\xff\x00"})
    source = open_source(redis_server.url, (stream,))
    records = drain(source, 2)
    source.ack(records)
    source.close()
    destination = RedisStreamDestination(
        RedisStreamDestinationSettings(stream=dead, url=redis_server.url),
        ConnectorContext("orders", threading.Event(), SystemClock()))
    for n, record in enumerate(records):
        destination.send({"requestContext": {"requestId": f"req-{n}"},
                          "payload": source.build_event([record])}, [record])
    destination.close()
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders
    source: {{type: redis_streams, streams: ["{stream}"], url: "{redis_server.url}"}}
    target: {{type: python, handler: "tests.integration.handlers:record"}}
    destination_config:
      on_failure: {{type: redis_stream, stream: "{dead}", url: "{redis_server.url}"}}
""")
    args = ["redrive", str(config), "--mapping", "orders", "--to", "source", "--state",
            str(tmp_path / "state"), "--progress", "off"]
    # When they are redriven to the source, twice
    codes = (main(args), main(args))
    # Then the stream holds each entry once more, fields unchanged, and the source reads them
    entries = client.xrange(stream)
    assert codes == (0, 0) and len(entries) == 4
    assert [fields for _, fields in entries[2:]] == [
        {b"body": b'{"id": 1}', b"kind": b"order"}, {b"body": b'{"id": 2}', b"blob": b"\xff\x00"}]
    again = open_source(redis_server.url, (stream,))
    assert [r.payload["body"] for r in drain(again, 2)] == ['{"id": 1}', '{"id": 2}']
    again.close()
    client.close()
