"""`esm redrive` from a Redis stream on-failure destination (real redis-server): notices
written by the redis_stream destination connector are replayed to the mapping's target,
and a re-run skips them."""

from __future__ import annotations

import json
import threading

import pytest

from connectors.redis.destination import (
    RedisStreamDestination,
    RedisStreamDestinationSettings,
)
from esm.cli import main
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.integration.handlers import read_journal
from tests.servers.redis_server import redis_server  # noqa: F401

pytestmark = pytest.mark.integration


def notice(n: int) -> dict[str, object]:
    record = {"eventSource": "esm:memory", "messageId": f"lane-0:{n}",
              "body": json.dumps({"id": f"r{n}", "seq": n})}
    return {"requestContext": {"requestId": f"req-{n}", "condition": "RetryAttemptsExhausted"},
            "version": "1.0", "payload": {"Records": [record]}}


def test_redrive_replays_redis_stream_notices_once(tmp_path, monkeypatch, redis_server):  # noqa: F811
    # Given 3 notices XADDed by the redis_stream destination (paging is unit-tested)
    stream = f"dead-{tmp_path.name}"
    settings = RedisStreamDestinationSettings(stream=stream, url=redis_server.url)
    destination = RedisStreamDestination(
        settings, ConnectorContext("orders", threading.Event(), SystemClock()))
    for n in range(3):
        destination.send(notice(n), [])
    destination.close()
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders
    source: {{type: memory}}
    target: {{type: python, handler: "tests.integration.handlers:record"}}
    destination_config:
      on_failure: {{type: redis_stream, stream: "{stream}", url: "{redis_server.url}"}}
""")
    journal = tmp_path / "journal.jsonl"
    monkeypatch.setenv("ESM_E2E_JOURNAL", str(journal))
    args = ["redrive", str(config), "--mapping", "orders", "--state", str(tmp_path / "state"),
            "--progress", "off"]
    # When it is redriven twice
    first = main(args)
    second = main(args)
    # Then every record reached the target exactly once
    assert (first, second) == (0, 0)
    ok = sorted(line["id"] for line in read_journal(journal) if line.get("kind") == "ok")
    assert ok == ["r0", "r1", "r2"]
    assert len((tmp_path / "state").read_text().splitlines()) == 3
