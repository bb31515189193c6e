"""`esm redrive --to source` for an ActiveMQ mapping (real broker): the messages of the
notices in a file destination go back to the queue as they were, once across re-runs."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path

import pytest

from connectors.activemq.settings import ActiveMQSettings
from connectors.activemq.source import ActiveMQSource
from esm.cli import main
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.contract.test_activemq_source_contract import Listener, poll_n
from tests.integration.test_e2e_activemq import drain
from tests.servers.activemq_server import ActiveMQServer, activemq_server  # noqa: F401

pytestmark = pytest.mark.integration


def notice(n: int, queue: str) -> dict[str, object]:
    message = {"messageID": f"ID:old-{n}", "messageType": "jms/text-message",
               "timestamp": 1_700_000_000_000, "deliveryMode": 2, "correlationID": f"c{n}",
               "replyTo": "null", "destination": {"physicalName": queue}, "redelivered": True,
               "type": "Order", "expiration": 0, "priority": 6,
               "data": base64.b64encode(json.dumps({"id": f"r{n}"}).encode()).decode(),
               "brokerInTime": 1_700_000_000_000, "brokerOutTime": 1_700_000_000_001,
               "properties": {"kind": "order"}}
    return {"requestContext": {"requestId": f"req-{n}", "condition": "MaxDeliveriesExceeded"},
            "version": "1.0", "payload": {"eventSource": "aws:mq", "eventSourceArn": "arn",
                                          "messages": [message]}}


def redrive_to_source(tmp_path: Path, server: ActiveMQServer, queue: str, count: int) -> int:
    """`esm redrive --to source` of `count` notices in the mapping's file destination."""
    dead = tmp_path / "dead.jsonl"
    dead.write_text("".join(json.dumps(notice(n, queue)) + "\n" for n in range(count)))
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders
    source: {{type: activemq, url: "{server.url}", queue: "{queue}"}}
    target: {{type: python, handler: "tests.integration.handlers:record"}}
    destination_config:
      on_failure: {{type: file, path: "{dead}"}}
""")
    return main(["redrive", str(config), "--mapping", "orders", "--to", "source",
                 "--state", str(tmp_path / "state"), "--progress", "off"])


def test_redrive_to_source_puts_messages_back_on_the_queue_once(
        tmp_path: Path, activemq_server: ActiveMQServer) -> None:  # noqa: F811
    # Given two notices; When they are redriven to the source twice
    queue = f"redrive-{uuid.uuid4().hex[:8]}"
    codes = [redrive_to_source(tmp_path, activemq_server, queue, 2) for _ in range(2)]
    # Then each message is on the queue once
    assert codes == [0, 0]
    assert sorted(m["id"] for m in drain(activemq_server, queue)) == ["r0", "r1"]


def test_redriven_message_keeps_its_headers_and_properties(
        tmp_path: Path, activemq_server: ActiveMQServer) -> None:  # noqa: F811
    queue = f"redrive-{uuid.uuid4().hex[:8]}"
    assert redrive_to_source(tmp_path, activemq_server, queue, 1) == 0
    source = ActiveMQSource(ActiveMQSettings(queue=queue, url=activemq_server.url),
                            ConnectorContext("c", threading.Event(), SystemClock()))
    source.open(Listener())
    try:
        [record] = poll_n(source, 1)
        got = record.payload
        assert (got["correlationID"], got["type"], got["priority"], got["properties"]) == (
            "c0", "Order", 6, {"kind": "order"})
        assert got["redelivered"] is False and got["messageID"] != "ID:old-0"
        source.ack([record])
    finally:
        source.close()
