"""Batch assembly for one lane: close on count, window, or the 6 MB payload limit,
whichever comes first (ESM-SPEC §1.4, checklist 11–13).

Sizes are measured on the encoded event: the source's empty-event envelope plus each
record's encoded JSON size plus one separator byte per record. Records are added in lane
order and batches come out in lane order. Pure: the caller passes monotonic time in.
"""

from __future__ import annotations

from dataclasses import dataclass

from esm.records import MAX_PAYLOAD_BYTES, Batch, Record


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """batch_size records, window_seconds after the first record, max_bytes per event."""

    batch_size: int
    window_seconds: float
    envelope_bytes: int = 0
    max_bytes: int = MAX_PAYLOAD_BYTES

    def fits_alone(self, record: Record) -> bool:
        """False for a record that can never be sent: it goes to the destination with
        MaximumPayloadSizeExceeded instead of blocking its lane (DESIGN §4)."""
        return self.envelope_bytes + record.size_bytes + 1 <= self.max_bytes


_NONE_CLOSED: list[Batch] = []  # shared, never mutated: "no batch closed"


class LaneBatcher:
    """Accumulates one lane's records into batches."""

    __slots__ = ("lane", "limits", "_records", "_bytes", "_opened_at")

    def __init__(self, lane: str, limits: BatchLimits) -> None:
        self.lane = lane
        self.limits = limits
        self._records: list[Record] = []
        self._bytes = limits.envelope_bytes
        self._opened_at = 0.0

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: Record, now: float) -> list[Batch]:
        """Add a record; return the batches this closed (0, 1 or 2), oldest first. Runs per
        record: the common case (nothing closes) allocates nothing."""
        size = record.size_bytes + 1
        records = self._records
        if records and self._bytes + size > self.limits.max_bytes:
            closed = [self._close()]
            records = self._records
        else:
            closed = _NONE_CLOSED
        if not records:
            self._opened_at = now
        records.append(record)
        self._bytes += size
        if len(records) >= self.limits.batch_size:
            return [*closed, self._close()]
        return closed

    def extend(self, records: list[Record], sizes: list[int], now: float) -> list[Batch]:
        """`add` for a run of records (`sizes` their size_bytes), the batches closed in
        order. A slice that fits the byte limit whole is added at once; one that does not
        goes record by record, so the batches are exactly those `add` would make."""
        closed: list[Batch] = []
        limits = self.limits
        start, count = 0, len(records)
        while start < count:
            room = limits.batch_size - len(self._records)
            end = min(count, start + room)
            size = sum(sizes[start:end]) + (end - start)
            if self._bytes + size > limits.max_bytes:
                for record in records[start:end]:
                    closed.extend(self.add(record, now))
                start = end
                continue
            if not self._records:
                self._opened_at = now
            self._records.extend(records[start:end])
            self._bytes += size
            start = end
            if len(self._records) >= limits.batch_size:
                closed.append(self._close())
        return closed

    def first(self) -> Record | None:
        """The open batch's first record, if one is open."""
        return self._records[0] if self._records else None

    def due(self, now: float) -> bool:
        """True when the open batch's window has elapsed (window 0: at once)."""
        return bool(self._records) and now - self._opened_at >= self.limits.window_seconds

    def deadline(self) -> float | None:
        """Monotonic time at which the open batch's window elapses, if one is open."""
        if not self._records:
            return None
        return self._opened_at + self.limits.window_seconds

    def flush(self) -> Batch | None:
        """Close the open batch now, if any."""
        return self._close() if self._records else None

    def _close(self) -> Batch:
        batch = Batch(self.lane, tuple(self._records))
        self._records = []
        self._bytes = self.limits.envelope_bytes
        return batch
