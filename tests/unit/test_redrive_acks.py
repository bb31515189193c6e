"""`esm redrive` with destinations that consume what they read: acks after the progress
file, streamed readers, the `mapping` hook argument, and the SQS / Kafka / memory pieces
(esm.redrive.replay, esm.redrive.sources, connectors' iter_notices and produce hooks)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.kafka import destination as kafka_destination
from connectors.memory.source import MemorySettings, MemorySource
from connectors.sqs.destination import SqsDestinationSettings
from connectors.sqs.destination import iter_notices as sqs_notices
from connectors.sqs.source import SqsSettings, SqsSource
from esm.clock import SystemClock
from esm.errors import DestinationError, SourceUnavailable
from esm.interfaces import ConnectorContext
from esm.redrive.replay import event_records, redrive
from esm.redrive.sources import NoticeEntry, hook_entries
from esm.redrive.state import DoneLog
from tests.unit.test_redrive import notice


def context() -> ConnectorContext:
    return ConnectorContext("orders", threading.Event(), SystemClock())


class Acks:
    """Entries whose ack records the order of events against the progress file."""

    def __init__(self, done: DoneLog) -> None:
        self.done, self.log = done, []  # type: list[str]

    def entry(self, nid: str, with_payload: bool = True) -> NoticeEntry:
        def ack() -> None:
            self.log.append(f"ack {nid} {'marked' if nid in self.done else 'UNMARKED'}")
        return NoticeEntry(nid, notice([int(nid[1:])], with_payload), ack)


def test_acks_follow_the_progress_mark_and_skip_failed_and_payloadless_notices(tmp_path):
    # Given four notices: one fails again, one has no payload
    done = DoneLog(tmp_path / "state")
    acks = Acks(done)
    entries = [acks.entry("n1"), acks.entry("n2"), acks.entry("n3", with_payload=False),
               acks.entry("n4")]
    # When they are redriven
    summary = redrive(entries, lambda e: "boom" if "lane-0:2" in json.dumps(e) else None, done)
    # Then only the replayed ones were acked, each after its id was in the progress file
    assert acks.log == ["ack n1 marked", "ack n4 marked"]
    assert (summary.replayed, summary.failed, summary.no_payload) == (2, 1, 1)


def test_notice_done_in_an_earlier_run_is_acked_not_replayed(tmp_path):
    # Given a run that died after marking n1 but before acking it
    (tmp_path / "state").write_text("n1\n")
    done = DoneLog(tmp_path / "state")
    acks = Acks(done)
    replayed: list[Any] = []
    # When it runs again
    summary = redrive([acks.entry("n1")], replayed.append, done)
    # Then it is acked (removed from the destination) without a second replay
    assert replayed == [] and acks.log == ["ack n1 marked"] and summary.already_done == 1


def test_dry_run_acks_nothing(tmp_path):
    done = DoneLog(tmp_path / "state")
    acks = Acks(done)
    redrive([acks.entry("n1")], lambda e: None, done, dry_run=True)
    assert acks.log == []


def test_a_failed_ack_is_counted_and_the_notice_stays_done(tmp_path):
    def ack() -> None:
        raise DestinationError("DeleteMessage failed")

    done = DoneLog(tmp_path / "state")
    summary = redrive([NoticeEntry("n1", notice([1]), ack)], lambda e: None, done)
    assert summary.ack_failed == 1 and "n1" in done
    assert any("left in destination" in line for line in summary.lines())


def test_streamed_entries_are_counted_as_read_and_closed_when_interrupted(tmp_path):
    # Given a reader generator of 5 notices and a stop after the second replay
    closed: list[bool] = []

    def reader() -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            for n in range(5):
                yield f"n{n}", notice([n])
        finally:
            closed.append(True)

    stop = threading.Event()
    calls: list[Any] = []

    def replay(event: dict[str, Any]) -> None:
        calls.append(event)
        if len(calls) == 2:
            stop.set()

    # When redriven
    summary = redrive(hook_entries(reader()), replay, DoneLog(tmp_path / "s"), stop=stop)
    # Then it stopped after two, the reader was closed, and the total is what was read
    assert summary.interrupted and summary.replayed == 2 and closed == [True]
    assert summary.total == 2


def test_event_records_reads_records_lists_and_kafka_groups():
    assert event_records({"Records": [{"a": 1}, "junk"]}) == [{"a": 1}]
    kafka = {"records": {"t-0": [{"offset": 1}], "t-1": [{"offset": 2}]}}
    assert event_records(kafka) == [{"offset": 1}, {"offset": 2}]
    assert event_records({"something": "else"}) == []


def test_memory_source_produce_puts_bodies_back_on_their_lanes():
    source = MemorySource(MemorySettings(lanes=2), context())
    source.produce([{"lane": "lane-1", "body": '{"id": 7}'}, {"lane": "lane-0", "body": "x"}])
    assert source.broker.backlog() == {"lane-0": 1.0, "lane-1": 1.0}
    source.produce([{"lane": "gone", "body": "y"}])  # a lane this broker does not have
    assert sum(source.broker.backlog().values()) == 3


class FakeSqs:
    """send_message_batch refusing the ids in `refuse` once (or `forever`); receive from
    a list of pages."""

    def __init__(self, refuse: set[str] = frozenset(), pages: list[list[Any]] = (),
                 forever: bool = False) -> None:
        self.refuse, self.pages, self.forever = set(refuse), list(pages), forever
        self.batches: list[list[dict[str, Any]]] = []
        self.visible: list[str] = []
        self.deleted: list[str] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
        self.batches.append(Entries)
        failed = [{"Id": e["Id"]} for e in Entries if e["Id"] in self.refuse]
        if not self.forever:
            self.refuse -= {f["Id"] for f in failed}
        return {"Failed": failed}

    def receive_message(self, **params: Any) -> Any:
        return {"Messages": self.pages.pop(0) if self.pages else []}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:  # noqa: N803
        self.deleted.append(ReceiptHandle)

    def change_message_visibility_batch(self, QueueUrl: str, Entries: Any) -> None:  # noqa: N803
        self.visible += [e["ReceiptHandle"] for e in Entries]


def sqs_source(url: str, client: FakeSqs) -> SqsSource:
    return SqsSource(SqsSettings(queue_url=url, region="us-east-1"), context(), client=client)


def test_sqs_produce_sends_batches_of_ten_with_attributes_and_fifo_group():
    # Given 12 FIFO records with a binary message attribute, one refused once by SQS
    client = FakeSqs(refuse={"3"})
    records = [{"body": f"b{n}", "attributes": {"MessageGroupId": "g"},
                "messageAttributes": {"raw": {"binaryValue": base64.b64encode(b"\x00").decode(),
                                              "dataType": "Binary"}}} for n in range(12)]
    # When produced
    sqs_source("https://sqs.us-east-1.amazonaws.com/1/q.fifo", client).produce(records)
    # Then 10 + 2 went out, the refused one again (same dedup id), each with its group and
    # a deduplication id of its own
    assert [len(b) for b in client.batches] == [10, 2, 1]
    first = client.batches[0][0]
    assert first["MessageGroupId"] == "g" and first["MessageAttributes"]["raw"] == {
        "DataType": "Binary", "BinaryValue": b"\x00"}
    dedup = {e["Id"]: e["MessageDeduplicationId"] for b in client.batches[:2] for e in b}
    assert len(set(dedup.values())) == 12
    assert client.batches[2][0]["MessageDeduplicationId"] == dedup["3"]


def test_sqs_produce_gives_up_on_entries_refused_three_times():
    client = FakeSqs(refuse={"0"}, forever=True)
    with pytest.raises(SourceUnavailable, match="refused three times"):
        sqs_source("https://sqs.us-east-1.amazonaws.com/1/q", client).produce([{"body": "x"}])


def sqs_message(n: int, request: str | None = None) -> dict[str, Any]:
    body = {"requestContext": {"requestId": request}} if request else "not json"
    return {"MessageId": f"m{n}", "ReceiptHandle": f"h{n}",
            "Body": json.dumps(body) if request else body}


def test_sqs_notices_are_acked_by_delete_and_the_rest_made_visible_on_close():
    # Given a queue of three notices (one not JSON), the second coming back once (its
    # visibility timeout ran out while it was held)
    client = FakeSqs(pages=[[sqs_message(1, "r1"), sqs_message(2, "r2")],
                            [sqs_message(2, "r2"), sqs_message(3)]])
    settings = SqsDestinationSettings(queue_url="https://q", region="us-east-1")
    reader = sqs_notices(settings, {}, client=client)
    # When the first is acked and the reader is read to the end
    nid, _, ack = next(reader)
    ack()
    rest = [(n, notice) for n, notice, _ in reader]
    # Then ids come from requestId (the message id without one), a notice that came back is
    # not yielded twice, the acked one was deleted, the others released
    assert nid == "sqs:r1" and rest == [("sqs:r2", {"requestContext": {"requestId": "r2"}}),
                                        ("sqs-message:m3", {})]
    assert client.deleted == ["h1"] and sorted(client.visible) == ["h2", "h3"]


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[int] = []

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        assert not asynchronous  # the redrive run must know the commit is durable
        self.commits += [tp.offset for tp in offsets]


def test_kafka_commits_only_up_to_the_first_notice_not_acked():
    # Given notices at offsets 4, 5, 7 of a partition
    consumer = FakeConsumer()
    prefix = kafka_destination._CommitPrefix(consumer)
    for offset in (4, 5, 7):
        prefix.track(("dlq", 0), offset)
    # When 5 and 7 are acked before 4, then 4
    prefix.ack(("dlq", 0), 5)
    prefix.ack(("dlq", 0), 7)
    held = list(consumer.commits)
    prefix.ack(("dlq", 0), 4)
    # Then nothing was committed while 4 was open, then everything at once
    assert held == [] and consumer.commits == [8]


def test_kafka_notice_id_names_the_request_and_the_failed_record():
    class Message:  # confluent_kafka.Message's accessors
        def topic(self) -> str:
            return "dlq"

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return 9

    notice_doc = {"requestContext": {"requestId": "r"},
                  "payload": {"records": {"src-1": [{"topic": "src", "partition": 1,
                                                     "offset": 42}]}}}
    assert kafka_destination.notice_id(notice_doc, Message()) == "kafka:r:src-1@42"
    assert kafka_destination.notice_id({}, Message()) == "kafka-message:dlq-0@9"


class BusyCoordinator(FakeConsumer):
    """Refuses the first commits as a loading group coordinator does (retriable)."""

    def __init__(self, refusals: int, code: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.code = code

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        if self.refusals:
            self.refusals -= 1
            # librdkafka's sync commit errors do not always carry the retriable flag
            raise KafkaException(KafkaError(self.code, "busy"))
        super().commit(offsets, asynchronous)


def test_kafka_redrive_commit_is_retried_while_the_coordinator_is_busy(monkeypatch):
    monkeypatch.setattr(kafka_destination.time, "sleep", lambda seconds: None)
    consumer = BusyCoordinator(2, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    prefix = kafka_destination._CommitPrefix(consumer)
    prefix.track(("dlq", 0), 4)
    prefix.ack(("dlq", 0), 4)
    assert consumer.commits == [5] and consumer.refusals == 0


def test_kafka_redrive_commit_refused_for_good_is_reported(monkeypatch):
    monkeypatch.setattr(kafka_destination.time, "sleep", lambda seconds: None)
    consumer = BusyCoordinator(9, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
    prefix = kafka_destination._CommitPrefix(consumer)
    prefix.track(("dlq", 0), 4)
    with pytest.raises(DestinationError, match="redrive commit of dlq-0 at 5 failed"):
        prefix.ack(("dlq", 0), 4)
    assert consumer.commits == [] and consumer.refusals == 5
