"""`esm redrive` from an SQS on-failure destination (real ElasticMQ): notices written by the
SQS destination connector are replayed to the mapping's target and back to an SQS source;
an interrupted run re-run replays each notice exactly once overall and empties the queue."""
# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from connectors.sqs.destination import SqsDestination, SqsDestinationSettings
from esm.cli import main
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.servers.sqs_server import REGION, SqsServer, sqs_server  # noqa: F401

pytestmark = pytest.mark.integration

_seen: list[int] = []
_interrupt_after: list[int] = []  # [n]: raise SIGINT once n records were handled
_fail_ids: set[int] = set()


def handle(event: dict[str, Any], context: Any) -> None:
    """The mapping's target: journals record ids, fails those in _fail_ids, may interrupt
    the redrive (Ctrl-C) once it has seen enough."""
    ids = [json.loads(r["body"])["id"] for r in event["Records"]]
    if _fail_ids & set(ids):
        raise ValueError(f"still failing: {ids}")
    _seen.extend(json.loads(r["body"])["id"] for r in event["Records"])
    if _interrupt_after and len(_seen) >= _interrupt_after[0]:
        _interrupt_after.clear()
        os.kill(os.getpid(), signal.SIGINT)  # the redrive's handler sets its stop event


@pytest.fixture(autouse=True)
def _reset() -> None:
    _seen.clear()
    _interrupt_after.clear()
    _fail_ids.clear()


def sqs_record(n: int, group: str | None = None) -> dict[str, Any]:
    attributes = {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "4"}
    if group is not None:
        attributes["MessageGroupId"] = group
    return {"messageId": f"m{n}", "receiptHandle": "old", "body": json.dumps({"id": n}),
            "attributes": attributes, "eventSource": "aws:sqs",
            "messageAttributes": {"kind": {"stringValue": "order", "dataType": "String",
                                           "stringListValues": [], "binaryListValues": []}}}


def write_notices(server: SqsServer, queue_url: str, records: list[dict[str, Any]]) -> None:
    settings = dest_settings(server, queue_url)
    destination = SqsDestination(settings, ConnectorContext("orders", threading.Event(),
                                                            SystemClock()))
    for n, record in enumerate(records):
        destination.send({"requestContext": {"requestId": f"req-{n}",
                                             "condition": "RetryAttemptsExhausted"},
                          "version": "1.0", "payload": {"Records": [record]}}, [])
    destination.close()


def dest_settings(server: SqsServer, queue_url: str) -> SqsDestinationSettings:
    return SqsDestinationSettings(queue_url=queue_url, endpoint_url=server.endpoint_url,
                                  region=REGION, access_key_id="test", secret_access_key="test")


def aws(server: SqsServer) -> str:
    return (f'endpoint_url: "{server.endpoint_url}", region: {REGION}, '
            'access_key_id: test, secret_access_key: test')


def write_config(tmp_path: Path, server: SqsServer, dlq: str, source_queue: str) -> Path:
    config = tmp_path / "esm.yaml"
    config.write_text(f"""
mappings:
  - name: orders
    source: {{type: sqs, queue_url: "{source_queue}", max_receive_count: 3, {aws(server)}}}
    target: {{type: python, handler: "tests.integration.test_redrive_sqs:handle"}}
    destination_config:
      on_failure: {{type: sqs, queue_url: "{dlq}", {aws(server)}}}
""")
    return config


def redrive(config: Path, tmp_path: Path, *extra: str) -> int:
    return main(["redrive", str(config), "--mapping", "orders", "--state",
                 str(tmp_path / "state"), "--progress", "off", *extra])


def queue_size(server: SqsServer, url: str) -> int:
    attrs = server.client().get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"])


def receive_all(server: SqsServer, url: str) -> list[dict[str, Any]]:
    client, out = server.client(), []
    while True:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     AttributeNames=["All"], MessageAttributeNames=["All"])
        if not got.get("Messages"):
            return out
        out += got["Messages"]
        for message in got["Messages"]:  # a FIFO group hands out more once these are gone
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def notices_in_queue(server: SqsServer, tmp_path: Path, count: int) -> tuple[str, Path]:
    """A dead-letter queue holding `count` notices, and a config whose mapping uses it."""
    dlq = server.create_queue(visibility_timeout=600)
    write_notices(server, dlq, [sqs_record(n) for n in range(count)])
    return dlq, write_config(tmp_path, server, dlq, server.create_queue())


def test_interrupted_redrive_rerun_replays_each_sqs_notice_once_and_empties_the_queue(
        tmp_path, sqs_server):
    # Given 6 notices in an SQS dead-letter queue (long visibility: nothing comes back alone)
    dlq, config = notices_in_queue(sqs_server, tmp_path, 6)
    # When a redrive is interrupted (Ctrl-C) after 2 replays, then run again
    _interrupt_after.append(2)
    first = redrive(config, tmp_path)
    after_first = queue_size(sqs_server, dlq)
    second = redrive(config, tmp_path)
    # Then the first run stopped early but gave the unreplayed notices back at once, the
    # second replayed only those, every record reached the target exactly once, and the
    # queue is empty
    assert (first, second) == (1, 0)
    assert after_first == 4
    assert sorted(_seen) == list(range(6))
    assert queue_size(sqs_server, dlq) == 0


def test_a_notice_that_fails_again_stays_in_the_queue_for_the_next_run(tmp_path, sqs_server):
    # Given 3 notices, one of whose records is still failing
    dlq, config = notices_in_queue(sqs_server, tmp_path, 3)
    _fail_ids.add(1)
    # When redriven, then fixed and redriven again
    first = redrive(config, tmp_path)
    left = queue_size(sqs_server, dlq)
    _fail_ids.clear()
    second = redrive(config, tmp_path)
    # Then the failed notice stayed (visible again at once) and the next run replayed it
    assert (first, second, left) == (1, 0, 1)
    assert sorted(_seen) == [0, 1, 2]
    assert queue_size(sqs_server, dlq) == 0


@pytest.mark.parametrize("fifo", [False, True])
def test_redrive_to_source_sends_the_records_back_to_the_sqs_queue(tmp_path, sqs_server, fifo):
    # Given notices about records of a (FIFO) source queue
    dlq = sqs_server.create_queue(fifo=fifo, visibility_timeout=600)
    source = sqs_server.create_queue(fifo=fifo)
    group = "customer-7" if fifo else None
    write_notices(sqs_server, dlq, [sqs_record(n, group) for n in range(12)])
    config = write_config(tmp_path, sqs_server, dlq, source)
    # When they are redriven to the source
    code = redrive(config, tmp_path, "--to", "source")
    # Then the source queue holds every body once, with its attributes (and group, in order)
    got = receive_all(sqs_server, source)
    assert code == 0 and _seen == []
    ids = [json.loads(m["Body"])["id"] for m in got]
    assert (ids if fifo else sorted(ids)) == list(range(12))
    assert {m["MessageAttributes"]["kind"]["StringValue"] for m in got} == {"order"}
    if fifo:
        assert {m["Attributes"]["MessageGroupId"] for m in got} == {"customer-7"}
    assert queue_size(sqs_server, dlq) == 0
