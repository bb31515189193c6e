"""`esm redrive --to source` into a RabbitMQ source (real broker): messages read by the
source and dead-lettered are published back to their queue with their body and properties,
and the source reads them again; a re-run publishes nothing more."""
# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esm.cli import main
from tests.contract.test_rabbitmq_contract import (
    new_queue,
    open_source,
    poll_until,
    publish,
    ready,
)
from tests.servers.rabbitmq_server import PASSWORD, RabbitMQServer, rabbitmq_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_dead_lettered_messages_go_back_to_their_queue_with_their_properties(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        rabbitmq_server: RabbitMQServer) -> None:
    # Given two messages (one binary) read by the source and dead-lettered to a notice file
    queue = new_queue(rabbitmq_server)
    publish(rabbitmq_server, queue, [b'{"id": 1}', b"\xff\x00"], headers={"h": "v"},
            timestamp=1700000000, content_type="application/json")
    source = open_source(rabbitmq_server, queue)
    records = poll_until(source, 2)
    notices = tmp_path / "dead.jsonl"
    notices.write_text("".join(
        json.dumps({"requestContext": {"requestId": f"req-{n}",
                                       "condition": "MaxDeliveriesExceeded"},
                    "version": "1.0", "payload": source.build_event([record])}) + "\n"
        for n, record in enumerate(records)))
    source.ack(records)
    source.close()
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders
    source: {{type: rabbitmq, queues: ["{queue}"], url: "{rabbitmq_server.url}",
             password_env: RMQ_PASSWORD}}
    target: {{type: python, handler: "tests.integration.handlers:record"}}
""")
    monkeypatch.setenv("RMQ_PASSWORD", PASSWORD)
    args = ["redrive", str(config), "--mapping", "orders", "--to", "source", "--file",
            str(notices), "--state", str(tmp_path / "state"), "--progress", "off"]
    # When they are redriven to the source, twice
    codes = (main(args), main(args))
    # Then the queue holds each message once more, and the source reads them unchanged
    assert codes == (0, 0) and ready(rabbitmq_server, queue) == 2
    again = open_source(rabbitmq_server, queue)
    replayed = poll_until(again, 2)
    assert [r.payload for r in replayed] == [r.payload for r in records]
    again.ack(replayed)
    again.close()
