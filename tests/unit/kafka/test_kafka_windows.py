"""Tumbling windows on Kafka (beyond AWS) at the reader, over a fake consumer: windows
from record timestamps, a late record joining the open window, and the state kept in the
mapping's `window_state` store (SQLite here) across a restart."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from connectors.file.window_store import SqliteWindowStore, SqliteWindowStoreSettings
from connectors.kafka.source import KafkaSource
from esm.config.types import ConnectorSpec
from esm.interfaces import ConnectorContext
from esm.records import Event, InvokeResult, Returned
from tests.unit.kafka.fake_messages import Msg
from tests.unit.kafka.test_kafka_source import FakeConsumer, assign
from tests.unit.runtime_fakes import Rig, mapping_config

TP0 = TopicPartition("orders", 0)
T0 = 1_700_000_040_000  # ms, the start of a 60 s window


class SumTarget:
    """Sums the `n` of the values over each window; journals every event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        document = json.loads(event.body)
        with self._lock:
            self.events.append(document)
        state = dict(document["state"])
        for records in document["records"].values():
            for r in records:
                state["sum"] = state.get("sum", 0) + json.loads(base64.b64decode(r["value"]))["n"]
        return Returned({"state": state})

    def close(self) -> None:
        pass

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["isFinalInvokeForWindow"]]


def kafka_rig(target: SumTarget, path: Path, committed: int | None = None
              ) -> tuple[Rig, FakeConsumer]:
    consumers: list[FakeConsumer] = []

    def build(context: ConnectorContext) -> KafkaSource:
        def factory(config: dict[str, Any]) -> FakeConsumer:
            consumers.append(FakeConsumer(config))
            consumers[-1].group_offsets[TP0] = committed
            return consumers[-1]
        settings = KafkaSource.Settings(bootstrap_servers=("b:9092",), topics=("orders",),
                                        consumer_group_id="g")
        return KafkaSource(settings, context, consumer_factory=factory, environ={})

    store = ConnectorSpec("sqlite", SqliteWindowStore, SqliteWindowStoreSettings(str(path)))
    mapping = replace(mapping_config(batch_size=2, maximum_batching_window_in_seconds=0.0),
                      tumbling_window_in_seconds=60, window_state=store)
    rig = Rig(mapping, target, source_factory=build)
    rig.clock.advance(T0 / 1000 - rig.clock.now())
    return rig, consumers[0]


def msg(offset: int, seconds: float, n: int) -> Msg:
    return Msg(offset, value=json.dumps({"n": n}).encode(), partition=0,
               timestamp=int(T0 + seconds * 1000))


def run(rig: Rig, turns: int = 10) -> None:
    for _ in range(turns):
        rig.turn()


def test_windows_follow_record_timestamps_and_a_late_record_joins_the_open_window(
        tmp_path: Path) -> None:
    # Given records at 1 s, 2 s, then 61 s, then a late one stamped 30 s, then 62 s
    target = SumTarget()
    rig, consumer = kafka_rig(target, tmp_path / "w.sqlite", committed=0)
    consumer.script = [assign(TP0), {TP0: [msg(0, 1, 1), msg(1, 2, 2)]},
                       {TP0: [msg(2, 61, 10), msg(3, 30, 100), msg(4, 62, 1000)]}]
    # When the reader runs
    run(rig)
    # Then the first window held 1 + 2 and was finalised before the second window's first
    # batch; the late record was folded into the open (second) window
    [first] = target.finals()
    assert first["state"] == {"sum": 3} and first["records"] == {}
    assert first["window"] == {"start": "2023-11-14T22:14:00Z", "end": "2023-11-14T22:15:00Z"}
    assert first["shardId"] == "orders-0"
    assert target.events[-1]["state"]["sum"] == 110
    consumer.complete_commits()
    run(rig, 1)
    assert consumer.async_commits[-1] == {TP0: 5}


def test_the_window_state_survives_a_restart_in_the_window_store(tmp_path: Path) -> None:
    # Given a daemon that folded two records into a window, then stopped
    first = SumTarget()
    rig, consumer = kafka_rig(first, tmp_path / "w.sqlite", committed=0)
    consumer.script = [assign(TP0), {TP0: [msg(0, 1, 1), msg(1, 2, 2)]}]
    run(rig)
    rig.source.close()
    # When a new daemon reads on from the committed offset 2 and the window ends
    target = SumTarget()
    again, consumer = kafka_rig(target, tmp_path / "w.sqlite", committed=2)
    consumer.script = [assign(TP0), {TP0: [msg(2, 3, 4)]}, {TP0: [msg(3, 70, 8)]}]
    run(again)
    # Then it carried on with the saved state, and the final covers the whole window
    assert target.events[0]["state"] == {"sum": 3}
    assert target.finals()[0]["state"] == {"sum": 7}
