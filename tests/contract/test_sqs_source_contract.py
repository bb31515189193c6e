# ruff: noqa: F811  (pytest fixtures imported explicitly, per the harness convention)
"""SqsSource against a real SQS-compatible server (ElasticMQ, see tests/servers/sqs_server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

from connectors.sqs.source import SqsSettings, SqsSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.servers.sqs_server import CREDENTIALS, REGION, SqsServer, sqs_server  # noqa: F401


class Listener:
    def lanes_assigned(self, lanes: Any) -> None:
        pass

    def lanes_revoked(self, lanes: Any) -> None:
        pass


def open_source(server: SqsServer, url: str, **settings: Any) -> SqsSource:
    config = SqsSettings(queue_url=url, endpoint_url=server.endpoint_url, region=REGION,
                         access_key_id=CREDENTIALS["aws_access_key_id"],
                         secret_access_key=CREDENTIALS["aws_secret_access_key"], **settings)
    source = SqsSource(config, ConnectorContext("contract", threading.Event(), SystemClock()))
    source.open(Listener())
    return source


def poll_until(source: SqsSource, want: int, seconds: float = 15.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + seconds
    while len(got) < want and time.monotonic() < deadline:
        got += source.poll(1000, 1.0)
    return got


def send(server: SqsServer, url: str, bodies: list[str], group: str | None = None) -> None:
    client = server.client()
    for body in bodies:
        extra = {"MessageGroupId": group} if group else {}
        client.send_message(QueueUrl=url, MessageBody=body, **extra)


def depth(server: SqsServer, url: str) -> int:
    attrs = server.client().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    values = attrs["Attributes"]
    return int(values["ApproximateNumberOfMessages"]) + int(
        values["ApproximateNumberOfMessagesNotVisible"])


def test_acked_messages_are_deleted_and_event_has_aws_shape(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue()
    sqs_server.client().send_message(QueueUrl=url, MessageBody='{"a": 1}', MessageAttributes={
        "k": {"DataType": "String", "StringValue": "v"}})
    send(sqs_server, url, [f"plain-{i}" for i in range(24)])
    source = open_source(sqs_server, url)
    records = poll_until(source, 25)
    assert len(records) == 25 and source.lag() == {"queue": 25.0}
    first = next(r for r in records if r.payload["body"] == '{"a": 1}')
    assert first.filter_view is not None and first.filter_view["body"] == {"a": 1}
    assert first.payload["messageAttributes"]["k"]["stringValue"] == "v"
    assert first.payload["eventSourceARN"] == f"arn:aws:sqs:{REGION}:000000000000:" + \
        url.rsplit("/", 1)[1]
    assert set(first.payload["attributes"]) >= {"ApproximateReceiveCount", "SentTimestamp"}
    # When every record is acked (processed or filtered out) / Then the queue is empty
    source.ack(records)
    assert depth(sqs_server, url) == 0
    source.close()


def test_released_messages_come_back_after_visibility_timeout(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue(visibility_timeout=1)
    send(sqs_server, url, [str(i) for i in range(5)])
    source = open_source(sqs_server, url)
    records = poll_until(source, 5)
    failed = [r for r in records if r.payload["body"] in ("1", "3")]
    source.ack([r for r in records if r not in failed])
    source.release(failed, 0.0)
    again = poll_until(source, 2)
    assert sorted(r.payload["body"] for r in again) == ["1", "3"]
    assert all(r.delivery_count == 2 for r in again)
    source.ack(again)
    source.close()


def test_backoff_release_makes_messages_visible_after_delay(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue(visibility_timeout=300)
    send(sqs_server, url, ["x"])
    source = open_source(sqs_server, url, backoff_on_failure=True)
    source.release(poll_until(source, 1), 0.0)
    assert [r.payload["body"] for r in poll_until(source, 1, seconds=5)] == ["x"]
    source.close()


def _run_fifo(server: SqsServer, url: str, source: SqsSource, fail_once: str,
              stop_at_first_failure: bool) -> list[str]:
    """A stand-in for the core: each poll's records of one group form that group's batch;
    `fail_once` fails the first time it is seen."""
    seen: list[str] = []
    failed = False
    deadline = time.monotonic() + 30
    while depth(server, url) and time.monotonic() < deadline:
        by_group: dict[str, list[Any]] = {}
        for record in source.poll(10, 1.0):
            by_group.setdefault(record.lane, []).append(record)
        for batch in by_group.values():
            for n, record in enumerate(batch):
                if record.payload["body"] == fail_once and not failed:
                    failed = True
                    rest = batch[n:] if stop_at_first_failure else [record]
                    source.release(rest, 0.0)
                    if stop_at_first_failure:
                        break
                    continue
                seen.append(record.payload["body"])
                source.ack([record])
    return seen


def test_fifo_stop_at_first_failure_keeps_group_order(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue(fifo=True, visibility_timeout=1)
    send(sqs_server, url, [f"a{i}" for i in range(4)], group="a")
    send(sqs_server, url, [f"b{i}" for i in range(2)], group="b")
    source = open_source(sqs_server, url)
    # When a1 fails once and the batch reports a1..a3 (stop at first failure)
    seen = _run_fifo(sqs_server, url, source, "a1", stop_at_first_failure=True)
    # Then group a is processed exactly in order, b unaffected
    assert [b for b in seen if b.startswith("a")] == ["a0", "a1", "a2", "a3"]
    assert [b for b in seen if b.startswith("b")] == ["b0", "b1"]
    source.close()


def test_fifo_release_brings_later_outstanding_messages_back_in_order(
        sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue(fifo=True, visibility_timeout=1)
    send(sqs_server, url, [f"a{i}" for i in range(4)], group="a")
    source = open_source(sqs_server, url, backoff_on_failure=True)
    # When only a1 is released while a2, a3 were already handed out and get acked
    seen = _run_fifo(sqs_server, url, source, "a1", stop_at_first_failure=False)
    # Then a2, a3 were not deleted: the group is redelivered from a1 in order
    assert seen[-3:] == ["a1", "a2", "a3"] and seen[0] == "a0"
    source.close()


def test_concurrency_lanes_are_capped_by_slots(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue()
    send(sqs_server, url, [str(i) for i in range(60)])
    source = open_source(sqs_server, url, slots=2, pollers=3)
    records = poll_until(source, 60)
    assert {r.lane for r in records} == {"slot-0", "slot-1"}
    source.ack(records)
    source.close()


_CHILD = textwrap.dedent("""
    import sys, threading
    from connectors.sqs.source import SqsSettings, SqsSource
    from esm.clock import SystemClock
    from esm.interfaces import ConnectorContext
    class L:
        def lanes_assigned(self, lanes): pass
        def lanes_revoked(self, lanes): pass
    url, endpoint = sys.argv[1], sys.argv[2]
    settings = SqsSettings(queue_url=url, endpoint_url=endpoint, region="us-east-1",
                           access_key_id="test", secret_access_key="test")
    source = SqsSource(settings, ConnectorContext("kill", threading.Event(), SystemClock()))
    source.open(L())
    while True:
        records = source.poll(20, 1.0)
        if records:
            source.ack(records[: len(records) // 2])  # half processed, half mid-batch
            print("acked", len(records) // 2, flush=True)
""")


def test_kill_9_mid_batch_then_restart_loses_nothing(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue(visibility_timeout=2)
    bodies = [str(i) for i in range(40)]
    send(sqs_server, url, bodies)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, sqs_server.endpoint_url],
                             stdout=subprocess.PIPE, env=env)
    assert child.stdout is not None
    child.stdout.readline()  # it has acked some and holds others mid-batch
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    # When a fresh source takes over / Then every unacked message is delivered again
    remaining = depth(sqs_server, url)
    assert 0 < remaining < 40
    source = open_source(sqs_server, url)
    again = poll_until(source, remaining, seconds=30)
    assert len({r.item_id for r in again}) == remaining
    source.ack(again)
    assert depth(sqs_server, url) == 0
    source.close()
