"""Events handed to in-process handlers without an encode→decode round trip
(esm.interfaces.FreshEvents, `Event.owned`): the same document the body would decode to,
and nothing a handler does to it reaches esm's records or a retry's event."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest

from connectors.kafka.event import KafkaEvents, to_record
from connectors.python.target import PythonSettings, PythonTarget
from connectors.redis.entries import EntryDecoder
from connectors.redis.settings import RedisStreamsSettings
from connectors.redis.source import RedisStreamsSource
from esm.clock import FakeClock
from esm.interfaces import ConnectorContext
from esm.ops.metrics import Metrics
from esm.ops.status import MappingStatus
from esm.pipeline.invoker import Invoker
from esm.records import MAX_PAYLOAD_BYTES, Batch, Record, Success
from tests.unit.kafka.test_kafka_event import Msg

HANDLERS = '''
import orjson
seen = []

def vandal(event, context):
    seen.append(orjson.dumps(event))  # what this call was given, before it mutates it
    _trash(event)

def _trash(value):
    if isinstance(value, dict):
        for item in list(value.values()):
            _trash(item)
        value.clear()
        value["trashed"] = [1]
    elif isinstance(value, list):
        for item in value:
            _trash(item)
        value.clear()
        value.append("trashed")
'''


class KafkaLike:
    """The Kafka source's event methods (it delegates them to KafkaEvents)."""

    def __init__(self) -> None:
        self.events = KafkaEvents(["b:9092"])
        self.build_event = self.events.build_event
        self.fresh_event = self.events.fresh_event
        self.event_overhead_bytes = self.events.event_overhead_bytes

    def item_identifier(self, value: object) -> str | None:
        return None


@pytest.fixture
def vandal(tmp_path: Path) -> Iterator[tuple[PythonTarget, list[bytes]]]:
    (tmp_path / "fresh_vandal.py").write_text(HANDLERS)
    settings = PythonSettings(handler="fresh_vandal:vandal", python_path=(str(tmp_path),))
    target = PythonTarget(settings, ConnectorContext("m", threading.Event(), FakeClock()))
    target.load()
    yield target, sys.modules["fresh_vandal"].seen
    target.close()
    sys.modules.pop("fresh_vandal", None)


def kafka_records() -> list[Record]:
    return [to_record(Msg(offset, headers=[("h", b"\x01\xff")]), now=0.0)
            for offset in (1, 2)]


def redis_source() -> RedisStreamsSource:
    settings = RedisStreamsSettings(streams=("s",), consumer_name="c1")  # type: ignore[call-arg]
    return RedisStreamsSource(settings, ConnectorContext("m", threading.Event(), FakeClock()),
                              client=fakeredis.FakeRedis())


def redis_records() -> list[Record]:
    decoder = EntryDecoder("redis://127.0.0.1:6379/0", ["s"], "g", "body")
    return [decoder.record("s", "1-0", {b"body": b'{"a": [1]}', b"bin": b"\xff"}, 1),
            decoder.new_entries("s", [("2-0", ["body", "x"])], None)[0]]


def invoke_twice(source: Any, records: Sequence[Record],
                 target: PythonTarget) -> list[Success | object]:
    invoker = Invoker(source=source, target=target, timeout_seconds=3,
                      report_batch_item_failures=False, metrics=Metrics().for_mapping("m"),
                      status=MappingStatus("m", "memory", "python"))
    batch = Batch(records[0].lane, tuple(records))
    return [invoker.invoke(batch), invoker.invoke(batch)]  # the second: a retry


@pytest.mark.parametrize("kind", ["kafka", "redis"])
def test_a_handler_mutating_its_event_changes_neither_the_records_nor_a_retry(
        vandal: tuple[PythonTarget, list[bytes]], kind: str) -> None:
    # Given records of a source that builds owned events, and a handler that trashes its event
    target, seen = vandal
    source: Any = KafkaLike() if kind == "kafka" else redis_source()
    records = kafka_records() if kind == "kafka" else redis_records()
    if kind == "kafka":
        records = [records[0]]  # one lane per batch, as the reader dispatches
    payloads = orjson.dumps([r.payload for r in records])
    expected = orjson.loads(orjson.dumps(source.build_event(records)))
    # When the batch is invoked, and invoked again (a retry)
    assert invoke_twice(source, records, target) == [Success(), Success()]
    # Then both calls were given the event the encoded body decodes to
    assert [orjson.loads(s) for s in seen] == [expected, expected]
    # And the records esm holds are as read
    assert orjson.dumps([r.payload for r in records]) == payloads


def test_fresh_kafka_event_is_the_decoded_event_and_shares_nothing() -> None:
    # Given records with headers, from two partitions
    records = kafka_records() + [to_record(Msg(3, partition=5), now=0.0)]
    events = KafkaEvents(["b:9092"])
    # When an owned event is built
    fresh = events.fresh_event(records)
    # Then it equals the round-tripped event, and no dict or list in it is a record's
    assert fresh == orjson.loads(orjson.dumps(events.build_event(records)))
    assert not _shared(fresh, [r.payload for r in records])


def test_fresh_redis_event_is_the_decoded_event_and_shares_nothing() -> None:
    records, source = redis_records(), redis_source()
    fresh = source.fresh_event(records)
    assert fresh == orjson.loads(source.encode_event(records))
    assert "binaryFields" in fresh["Records"][0]["attributes"]
    assert not _shared(fresh, [r.payload for r in records])


def test_an_event_over_the_limit_is_measured_not_estimated(
        vandal: tuple[PythonTarget, list[bytes]]) -> None:
    # Given a batch whose estimate is over a 100-byte limit
    target, seen = vandal
    invoker = Invoker(source=KafkaLike(), target=target, timeout_seconds=3,  # type: ignore[arg-type]
                      report_batch_item_failures=False, metrics=Metrics().for_mapping("m"),
                      status=MappingStatus("m", "memory", "python"), max_payload_bytes=100)
    records = kafka_records()[:1]
    # When it is invoked, Then the real encoding is measured and found oversized
    outcome = invoker.invoke(Batch(records[0].lane, tuple(records)))
    assert type(outcome).__name__ == "Oversized" and seen == []
    assert MAX_PAYLOAD_BYTES > 100


def _containers(value: Any) -> Iterator[int]:
    if isinstance(value, dict | list):
        yield id(value)
        for item in value.values() if isinstance(value, dict) else value:
            yield from _containers(item)


def _shared(fresh: Any, payloads: list[Any]) -> set[int]:
    held = {i for p in payloads for i in _containers(p)}
    return held & set(_containers(fresh))
