"""Which received SQS messages go to the core next, on which lane (pure: no I/O).

Standard queues (`SlotHandout`): lanes are a fixed set of slots `slot-0 … slot-N-1`. Each
ReceiveMessage answer goes whole to the next unpaused slot, round-robin, like one AWS
poller's batch; the core runs one batch per slot at a time, so N slots allow N concurrent
batches (ESM-SPEC §5).

FIFO queues (`GroupHandout`): lanes are message groups (ESM-SPEC §5, checklist 41). A
group's messages are handed out only while the core holds none of that group
("outstanding"), in receive order. SQS itself delivers nothing more of a group while any of
its messages is in flight, so the group stays blocked until the core settles it.
When the core releases records of a group, every other outstanding record of that group is
"voided": it is released with them and a later ack for it does not delete it. The queue then
redelivers the group in its original order (failed message first), at the price of a
duplicate for any voided record the target did process (at-least-once, ESM-SPEC §7).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Sequence

from connectors.sqs.records import Received
from esm.records import Record


class SlotHandout:
    """Round-robin over unpaused slots, one receive answer per slot at a time."""

    def __init__(self, slots: int) -> None:
        self.lanes = tuple(f"slot-{i}" for i in range(slots))
        self._paused: set[str] = set()
        self._next = 0
        self._pending: deque[list[Received]] = deque()

    def add(self, chunk: list[Received]) -> None:
        if chunk:
            self._pending.append(chunk)

    def buffered(self) -> int:
        return sum(len(c) for c in self._pending)

    def can_take_more(self) -> bool:
        return len(self._paused) < len(self.lanes)

    def take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        while self._pending and len(out) < max_records:
            lane = self._next_free_lane()
            if lane is None:
                break
            chunk = self._pending.popleft()
            room = max_records - len(out)
            if len(chunk) > room:
                self._pending.appendleft(chunk[room:])
                chunk = chunk[:room]
            out.extend(r.to_record(lane) for r in chunk)
        return out

    def _next_free_lane(self) -> str | None:
        for _ in range(len(self.lanes)):
            lane = self.lanes[self._next]
            self._next = (self._next + 1) % len(self.lanes)
            if lane not in self._paused:
                return lane
        return None

    def pause(self, lanes: Collection[str]) -> None:
        self._paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._paused.difference_update(lanes)

    def settled(self, records: Iterable[Record]) -> None:
        """Slots keep no per-record state."""

    def void_rest_of_groups(self, released: Sequence[Record]) -> list[Record]:
        return []  # order does not matter on standard queues

    def consume_void(self, record: Record) -> bool:
        return False

    def drain(self) -> list[Received]:
        out = [r for chunk in self._pending for r in chunk]
        self._pending.clear()
        return out


class GroupHandout:
    """Message groups as lanes; a group is handed out only when the core holds none of it."""

    lanes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._paused: set[str] = set()
        self._pending: list[Received] = []
        self._outstanding: dict[str, dict[str, Record]] = {}  # group → handle → record
        self._voided: set[str] = set()  # receipt handles not to delete on ack

    def add(self, chunk: list[Received]) -> None:
        self._pending.extend(chunk)

    def buffered(self) -> int:
        return len(self._pending)

    def can_take_more(self) -> bool:
        return True  # new receives bring other groups; SQS holds back locked ones

    def take(self, max_records: int) -> list[Record]:
        blocked = self._paused | self._outstanding.keys()
        out: list[Record] = []
        keep: list[Received] = []
        for received in self._pending:
            group = received.group or ""
            if group in blocked or len(out) >= max_records:
                keep.append(received)
                continue
            record = received.to_record(group)
            out.append(record)
        self._pending = keep
        for record in out:
            self._outstanding.setdefault(record.lane, {})[record.handle] = record
        return out

    def pause(self, lanes: Collection[str]) -> None:
        self._paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._paused.difference_update(lanes)

    def settled(self, records: Iterable[Record]) -> None:
        for record in records:
            group = self._outstanding.get(record.lane)
            if group is not None:
                group.pop(record.handle, None)
                if not group:
                    del self._outstanding[record.lane]

    def void_rest_of_groups(self, released: Sequence[Record]) -> list[Record]:
        """Other outstanding records of the released records' groups, now voided."""
        voided: list[Record] = []
        for lane in {r.lane for r in released}:
            for record in self._outstanding.get(lane, {}).values():
                if record.handle not in self._voided:
                    self._voided.add(record.handle)
                    voided.append(record)
        return voided

    def consume_void(self, record: Record) -> bool:
        """True (once) for a voided record: it was already released and must not be
        deleted or released again, so that it comes back in group order."""
        if record.handle in self._voided:
            self._voided.discard(record.handle)
            return True
        return False

    def drain(self) -> list[Received]:
        out, self._pending = self._pending, []
        return out
