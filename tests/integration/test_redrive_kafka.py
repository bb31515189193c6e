"""`esm redrive` from a Kafka topic on-failure destination (real broker): notices written by
the Kafka destination connector are replayed to the mapping's target through the consumer
group esm-redrive-<mapping>, and back to the source topic with their key, value and headers.
A run where one notice fails again, re-run, replays each notice exactly once overall."""
# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from connectors.kafka.destination import KafkaDestination
from connectors.kafka.event import to_record
from esm.cli import main
from tests.contract.test_kafka_source import make_topic
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401
from tests.unit.kafka.test_kafka_event import Msg

pytestmark = pytest.mark.integration

_seen: list[int] = []
_fail_ids: set[int] = set()


def handle(event: dict[str, Any], context: Any) -> None:
    """The mapping's target: journals the `n` of each record value, fails those listed."""
    ids = [json.loads(base64.b64decode(r["value"]))["n"]
           for records in event["records"].values() for r in records]
    if _fail_ids & set(ids):
        raise ValueError(f"still failing: {ids}")
    _seen.extend(ids)


@pytest.fixture(autouse=True)
def _reset() -> None:
    _seen.clear()
    _fail_ids.clear()


def write_notices(server: KafkaServer, dlq: str, source: str, count: int) -> None:
    """One notice per failed record, as the daemon's Kafka destination writes them."""
    destination = KafkaDestination(KafkaDestination.Settings(
        bootstrap_servers=(server.bootstrap,), topic=dlq), None)
    for n in range(count):
        record = to_record(Msg(100 + n, topic=source, partition=0, key=f"k{n}".encode(),
                               value=json.dumps({"n": n}).encode(),
                               headers=[("trace", bytes([n, 255]))]), now=0.0)
        destination.send({"requestContext": {"requestId": f"req-{n}",
                                             "condition": "RetryAttemptsExhausted"},
                          "version": "1.0", "KafkaBatchInfo": {}}, [record])
    destination.close()


def write_config(tmp_path: Path, server: KafkaServer, dlq: str, source: str) -> Path:
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders-{uuid.uuid4().hex[:8]}
    source: {{type: kafka, bootstrap_servers: ["{server.bootstrap}"], topics: ["{source}"],
              consumer_group_id: g}}
    target: {{type: python, handler: "tests.integration.test_redrive_kafka:handle"}}
    destination_config:
      on_failure: {{type: kafka, bootstrap_servers: ["{server.bootstrap}"], topic: "{dlq}"}}
""")
    return config


def redrive(config: Path, tmp_path: Path, *extra: str) -> int:
    name = re.search(r"name: (\S+)", config.read_text()).group(1)  # type: ignore[union-attr]
    return main(["redrive", str(config), "--mapping", name, "--state",
                 str(tmp_path / "state"), "--progress", "off", *extra])


def consume(server: KafkaServer, topic: str, count: int) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap,
                             auto_offset_reset="earliest", group_id=f"r-{uuid.uuid4().hex}")
    got: list[Any] = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        for messages in consumer.poll(500).values():
            got.extend(messages)
    consumer.close()
    return got


def test_failed_again_notice_is_reread_next_run_and_each_is_replayed_once(
        tmp_path, kafka_server, capsys):
    # Given 5 notices in a dead-letter topic, the one for record 2 still failing
    dlq, source = make_topic(kafka_server, 1), make_topic(kafka_server, 1)
    write_notices(kafka_server, dlq, source, 5)
    config = write_config(tmp_path, kafka_server, dlq, source)
    _fail_ids.add(2)
    # When redriven, then fixed and redriven twice more
    first = redrive(config, tmp_path)
    _fail_ids.clear()
    second = redrive(config, tmp_path)
    out_second = capsys.readouterr().out
    third = redrive(config, tmp_path)
    out_third = capsys.readouterr().out
    # Then the group's offset stayed at the failed notice, so the second run read it (and the
    # two after it, skipped as done), every record reached the target once, and the third
    # run found nothing left
    assert (first, second, third) == (1, 0, 0)
    assert sorted(_seen) == [0, 1, 2, 3, 4]
    assert "3 notice(s)" in out_second and re.search(r"already done \(skipped\)\s+2",
                                                     out_second)
    assert "0 notice(s)" in out_third


def test_redrive_to_source_writes_key_value_and_headers_back_to_the_topic(
        tmp_path, kafka_server):
    # Given 3 notices about records of a source topic
    dlq, source = make_topic(kafka_server, 1), make_topic(kafka_server, 1)
    write_notices(kafka_server, dlq, source, 3)
    config = write_config(tmp_path, kafka_server, dlq, source)
    # When they are redriven to the source
    code = redrive(config, tmp_path, "--to", "source")
    # Then the source topic holds the original records again
    got = consume(kafka_server, source, 3)
    assert code == 0 and _seen == []
    assert [(m.key, json.loads(m.value)["n"]) for m in got] == [(b"k0", 0), (b"k1", 1),
                                                                (b"k2", 2)]
    assert [list(m.headers) for m in got] == [[("trace", bytes([n, 255]))] for n in range(3)]
