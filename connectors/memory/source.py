"""In-process source for tests, benchmarks and the demo (`type: memory`).

A `MemoryBroker` holds the data and the consumer-group state, so a new `MemorySource`
over the same broker resumes where the last one committed, as after a restart. Stream
family (default): per-lane ordered logs with a committed position. Queue family: messages
with a visibility timeout and a receive count, redelivered when released or not acked.

Event shape (esm's own, close to SQS):
    {"Records": [{"eventSource": "esm:memory", "eventSourceARN": "memory://<mapping>",
      "lane": "lane-0", "sequenceNumber": "7", "messageId": "lane-0:7", "body": "...",
      "attributes": {"deliveryCount": "1", "timestamp": "1700000000000"}}]}
Filtering sees `body` parsed as JSON when it is valid JSON, else the plain string.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from esm.interfaces import Clock, ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

_ENVELOPE = len(b'{"Records":[]}')


@dataclass(slots=True)
class _Message:
    lane: str
    seq: int
    body: str
    timestamp: float
    receive_count: int = 0
    invisible_until: float = 0.0


class MemoryBroker:
    """Thread-safe store behind one or more MemorySource instances."""

    def __init__(self, family: Literal["stream", "queue"], clock: Clock, lanes: int = 1,
                 visibility_timeout_seconds: float = 30.0) -> None:
        self.family = family
        self.clock = clock
        self.lane_names = [f"lane-{i}" for i in range(lanes)]
        self.visibility_timeout_seconds = visibility_timeout_seconds
        self._lock = threading.Lock()
        self._logs: dict[str, list[_Message]] = {lane: [] for lane in self.lane_names}
        self._committed: dict[str, int] = {lane: 0 for lane in self.lane_names}
        self._queue: dict[tuple[str, int], _Message] = {}
        self._next = 0
        self.acked: list[str] = []  # messageIds in ack order, for tests
        self.windows: dict[str, str] = {}  # lane → saved tumbling-window document (JSON)

    def put(self, body: str | Mapping[str, Any], lane: str | None = None) -> str:
        """Append a record; returns its messageId. Lanes round-robin when not given."""
        text = body if isinstance(body, str) else json.dumps(body)
        with self._lock:
            name = lane or self.lane_names[self._next % len(self.lane_names)]
            log = self._logs.setdefault(name, [])
            self._committed.setdefault(name, 0)
            message = _Message(name, len(log), text, self.clock.now())
            log.append(message)
            self._next += 1
            if self.family == "queue":
                self._queue[(name, message.seq)] = message
            return f"{name}:{message.seq}"

    def committed(self, lane: str) -> int:
        with self._lock:
            return self._committed.get(lane, 0)

    def read_stream(self, cursors: dict[str, int], lanes: Sequence[str],
                    limit: int) -> list[_Message]:
        with self._lock:
            out: list[_Message] = []
            for lane in lanes:
                log = self._logs.get(lane, [])
                start = cursors.setdefault(lane, self._committed.get(lane, 0))
                chunk = log[start:start + limit - len(out)]
                cursors[lane] = start + len(chunk)
                out.extend(chunk)
                if len(out) >= limit:
                    break
            return out

    def commit(self, lane: str, next_seq: int) -> None:
        with self._lock:
            if next_seq > self._committed.get(lane, 0):
                self._committed[lane] = next_seq

    def receive(self, limit: int, now: float) -> list[_Message]:
        with self._lock:
            out: list[_Message] = []
            for message in self._queue.values():
                if message.invisible_until <= now:
                    message.receive_count += 1
                    message.invisible_until = now + self.visibility_timeout_seconds
                    out.append(message)
                    if len(out) >= limit:
                        break
            return out

    def delete(self, lane: str, seq: int) -> None:
        with self._lock:
            if self._queue.pop((lane, seq), None) is not None:
                self.acked.append(f"{lane}:{seq}")

    def make_visible(self, lane: str, seq: int, at: float) -> None:
        with self._lock:
            message = self._queue.get((lane, seq))
            if message is not None:
                message.invisible_until = at

    def backlog(self) -> dict[str, float]:
        """Records not yet finished, per lane."""
        with self._lock:
            if self.family == "queue":
                counts: dict[str, float] = {}
                for (lane, _), _msg in self._queue.items():
                    counts[lane] = counts.get(lane, 0) + 1
                return counts
            return {lane: float(len(log) - self._committed.get(lane, 0))
                    for lane, log in self._logs.items()}


@dataclass(frozen=True, slots=True)
class MemorySettings:
    lanes: int = field(default=1, metadata={"min": 1, "max": 1000, "doc": "number of lanes"})
    records: tuple[str, ...] = field(
        default=(), metadata={"doc": "record bodies (JSON or plain text), round-robin over lanes"})
    generate: int = field(default=0, metadata={
        "min": 0, "max": 10_000_000, "doc": "extra synthetic records {\"id\": n}"})
    visibility_timeout_seconds: float = field(
        default=30.0, metadata={"min": 0, "max": 43200, "doc": "queue family redelivery delay"})
    ordering_key_field: str | None = field(default=None, metadata={
        "doc": "field of a JSON body whose value keeps order with parallelization_factor"})


class MemorySource:
    """Stream-family source over a MemoryBroker (built from the settings unless one is
    injected). `MemoryQueueSource` (type `memory_queue`) has queue semantics."""

    Settings: ClassVar[type] = MemorySettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="stream", window_required_above_10=False, batch_info_key="MemoryBatchInfo",
        supports_parallelization_factor=True, supports_tumbling_windows=True,
        keeps_windows=True)

    def __init__(self, settings: MemorySettings, context: ConnectorContext,
                 broker: MemoryBroker | None = None) -> None:
        self.settings = settings
        self.context = context
        self.broker = broker or self.broker_from_settings(
            settings, context.clock, self.traits.family)
        self.family = self.broker.family
        self._arn = f"memory://{context.mapping}"
        self._cursors: dict[str, int] = {}
        self._paused: set[str] = set()
        self._listener: LaneListener | None = None

    @staticmethod
    def broker_from_settings(settings: MemorySettings, clock: Clock,
                             family: Literal["stream", "queue"] = "stream") -> MemoryBroker:
        broker = MemoryBroker(family, clock, settings.lanes,
                              settings.visibility_timeout_seconds)
        for body in settings.records:
            broker.put(body)
        for n in range(settings.generate):
            broker.put(f'{{"id": {n}}}')
        return broker

    # -- reader-thread methods ----------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        self._listener = listener
        store = self.context.checkpoints
        if store is not None and self.family == "stream":
            for lane in self.broker.lane_names:  # resume where an earlier instance committed
                position = store.load(self.context.mapping, lane)
                if position is not None:
                    self.broker.commit(lane, int(position))
        listener.lanes_assigned(list(self.broker.lane_names))

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        now = self.context.clock.now()
        if self.family == "queue":
            messages = self.broker.receive(max_records, now)
        else:
            lanes = [lane for lane in self.broker.lane_names if lane not in self._paused]
            messages = self.broker.read_stream(self._cursors, lanes, max_records)
        return [self._record(m) for m in messages]

    def ack(self, records: Sequence[Record]) -> None:
        if self.family == "queue":
            for record in records:
                self.broker.delete(record.lane, int(record.position))
            return
        last: dict[str, int] = {}
        for record in records:
            last[record.lane] = int(record.position)
            self.broker.acked.append(record.item_id)
        store = self.context.checkpoints
        for lane, seq in last.items():
            self.broker.commit(lane, seq + 1)
            if store is not None:
                store.save(self.context.mapping, lane, str(seq + 1))

    def load_window(self, lane: str) -> Mapping[str, Any] | None:
        """esm.interfaces.KeepsWindows: kept in the broker, like its committed positions."""
        saved = self.broker.windows.get(lane)
        return None if saved is None else dict(orjson.loads(saved))

    def save_window(self, lane: str, document: Mapping[str, Any]) -> None:
        self.broker.windows[lane] = orjson.dumps(document).decode()

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        at = self.context.clock.now() + delay_seconds
        for record in records:
            self.broker.make_visible(record.lane, int(record.position), at)

    def pause(self, lanes: Collection[str]) -> None:
        self._paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._paused.difference_update(lanes)

    def lag(self) -> Mapping[str, float]:
        return self.broker.backlog()

    def close(self) -> None:
        self._cursors.clear()

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: put each record's body back on its lane (lanes
        round-robin when the record's lane is not one of this broker's)."""
        for record in records:
            lane = record.get("lane")
            self.broker.put(str(record.get("body", "")),
                            lane if lane in self.broker.lane_names else None)

    # -- pure methods -------------------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return {"Records": [r.payload for r in records]}

    def event_overhead_bytes(self) -> int:
        return _ENVELOPE

    def item_identifier(self, value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        return {
            "lane": records[0].lane if records else None,
            "startSequenceNumber": records[0].position if records else None,
            "endSequenceNumber": records[-1].position if records else None,
            "batchSize": len(records),
            "eventSourceArn": self._arn,
        }

    def _record(self, message: _Message) -> Record:
        payload: dict[str, Any] = {
            "eventSource": "esm:memory",
            "eventSourceARN": self._arn,
            "lane": message.lane,
            "sequenceNumber": str(message.seq),
            "messageId": f"{message.lane}:{message.seq}",
            "body": message.body,
            "attributes": {"deliveryCount": str(max(1, message.receive_count)),
                           "timestamp": str(int(message.timestamp * 1000))},
        }
        try:
            view = dict(payload, body=orjson.loads(message.body))
        except orjson.JSONDecodeError:
            view = payload
        return Record(
            lane=message.lane, position=str(message.seq), item_id=payload["messageId"],
            payload=payload, size_bytes=len(orjson.dumps(payload)), timestamp=message.timestamp,
            filter_view=view, delivery_count=max(1, message.receive_count),
            ordering_key=self._ordering_key(view["body"]),
        )

    def _ordering_key(self, body: Any) -> str | None:
        """The body's `ordering_key_field` as text; None (the lane's shared slot) when
        unset, absent, null or the body is not a JSON object."""
        name = self.settings.ordering_key_field
        if name is None or not isinstance(body, dict) or body.get(name) is None:
            return None
        return str(body[name])


class MemoryQueueSource(MemorySource):
    """Queue-family memory source: per-record ack, release = redeliver (`memory_queue`)."""

    traits: ClassVar[SourceTraits] = SourceTraits(
        family="queue", default_batch_size=10, window_required_above_10=False,
        batch_info_key="MemoryBatchInfo")
