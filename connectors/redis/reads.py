"""Reading a Redis Streams source's entries: XREADGROUP on the pipe, reclaimed entries, and
what has been read but not yet handed to the core (reader thread only).

- Reads go through the source's `RedisPipe`: while a stream is read fast the next
  XREADGROUP is sent ahead (no BLOCK), so Redis answers it while the reader ingests. A
  poll shorter than `_SHORTEST_WAIT_SECONDS` (the reader's 1 ms polls while batches are in
  flight) takes only what has arrived.
- Every entry read and not yet acked or released is *held*, per stream: the source acks
  a delivery at most once, and an entry still held is not delivered again when this
  replica reclaims it (`Reclaimer`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from connectors.redis.client import stream_reply_pairs
from connectors.redis.entries import EntryDecoder
from connectors.redis.entries import text as _text
from connectors.redis.pipe import RedisPipe
from connectors.redis.reclaim import Reclaimer
from esm.interfaces import Clock
from esm.records import Record

# Redis times blocked reads out on its cron tick (hz 10: every 100 ms), so a shorter BLOCK
# is answered after up to 100 ms anyway. The reader polls with a 1 ms timeout while batches
# are in flight; blocking then stalled each settlement by a tick once the stream was read.
_SHORTEST_BLOCK_MS = 100
# Entries asked for per XREADGROUP. A smaller reply is decoded, filtered and invoked while
# still in the CPU cache (bench_redis: 1,700-entry reads cost ~20% more CPU per record than
# 128-entry ones), and the pipe keeps one read ahead, so round trips are not waited for.
_READ_COUNT = 128
# Polls shorter than this (the reader's 1 ms polls while batches are in flight) do not wait
# for a read sent ahead to be answered.
_SHORTEST_WAIT_SECONDS = 0.005


class StreamReads:
    """Entries read for one source: its buffer and held ids per stream."""

    def __init__(self, *, pipe: RedisPipe, decoder: EntryDecoder, reclaimer: Reclaimer,
                 streams: tuple[str, ...], group: str, consumer: str, clock: Clock,
                 block_milliseconds: int, reclaim_interval_seconds: float,
                 handle: object) -> None:
        self._pipe = pipe
        self._decoder = decoder
        self._reclaimer = reclaimer
        self._streams = streams
        self._group = group
        self._consumer = consumer
        self._clock = clock
        self._block_ms = block_milliseconds
        self._reclaim_interval = reclaim_interval_seconds
        self._handle = handle  # the source: marks which instance read a record
        # Entries read and not yet seen acked or released, per stream.
        self.held: dict[str, set[str]] = {s: set() for s in streams}
        # Read from Redis (so pending for this consumer) but not yet handed to the core.
        self._buffer: dict[str, deque[Record]] = {s: deque() for s in streams}
        self._read_count = 0
        self._read_ahead = False  # the last read filled its COUNT: more is likely there
        self.next_reclaim = 0.0

    @staticmethod
    def waits(timeout_seconds: float) -> bool:
        """Whether a poll of this timeout waits for replies owed (see the module docstring)."""
        return timeout_seconds >= _SHORTEST_WAIT_SECONDS

    def fill(self, active: list[str], max_records: int, timeout_seconds: float,
             wait: bool) -> None:
        """Reclaim idle pending entries when due, then read new ones into the buffer
        (unless a read sent ahead is still owed and `wait` is False)."""
        now = self._clock.monotonic()
        if now >= self.next_reclaim:
            self.next_reclaim = now + self._reclaim_interval
            for stream in active:
                for entry_id, fields, count, attempt in self._reclaimer.claim(
                        stream, max_records, self.held[stream]):
                    self._hold(self._decoder.record(stream, entry_id, fields, count,
                                                    self._handle, attempt))
        if any(self._buffer[s] for s in active):
            return  # hand these out; the read sent ahead after them brings the next ones
        if self._reading() and not wait:
            return  # the read sent ahead is not answered yet: the next poll takes it
        block_ms = min(self._block_ms, int(timeout_seconds * 1000))
        if block_ms < _SHORTEST_BLOCK_MS:
            block_ms = 0  # no BLOCK: answered at once, and the reader waits if it must
        self._send_read(active, max_records, block_ms)
        self._pipe.collect()

    def take(self, active: list[str], max_records: int) -> list[Record]:
        """Up to `max_records` buffered records of the active streams, in stream order;
        then the next read is sent ahead if the last one filled its count."""
        out: list[Record] = []
        for stream in active:
            buffer = self._buffer[stream]
            room = max_records - len(out)
            if len(buffer) <= room:  # the usual case: hand over the whole buffer at once
                out.extend(buffer)
                buffer.clear()
                continue
            while buffer and len(out) < max_records:
                out.append(buffer.popleft())
        if self._read_ahead and out:
            self._send_read(active, max_records, 0)
        return out

    def _send_read(self, streams: list[str], count: int, block_ms: int) -> None:
        """XREADGROUP '>' on the pipe; `_store_read` decodes the reply when it is read."""
        if self._reading():
            return
        count = min(count, _READ_COUNT)
        block = ("BLOCK", block_ms) if block_ms else ()
        self._pipe.send(self._store_read, "XREADGROUP", "GROUP", self._group, self._consumer,
                        "COUNT", count, *block, "STREAMS", *streams, *[">"] * len(streams))
        self._read_count = count

    def _reading(self) -> bool:
        """An XREADGROUP was sent on the pipe and its reply not read yet."""
        return self._pipe.owes(self._store_read)

    def _store_read(self, reply: Any) -> None:
        got = 0
        for raw_stream, entries in stream_reply_pairs(reply):
            stream = _text(raw_stream)
            records = self._decoder.new_entries(stream, entries, self._handle)
            self.held[stream].update([record.item_id for record in records])
            self._buffer[stream].extend(records)
            got += len(entries)
        self._read_ahead = got >= self._read_count

    def _hold(self, record: Record) -> None:
        self.held[record.lane].add(record.item_id)
        self._buffer[record.lane].append(record)
