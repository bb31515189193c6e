"""One shard's reader-side state, and one GetRecords for it with iterator recovery.

The shard reader (`reader.py`) decides which shard to fetch and when; this module does
the fetch itself:
- one iterator per shard, created from the last record read, else the checkpoint;
- an expired iterator, or a position trimmed under a live one, is replaced once; a
  position past the stream's retention restarts at TRIM_HORIZON (records before it are
  gone; logged). If the fresh iterator fails at once, the fetch is an empty read and the
  next interval tries again;
- a shard that no longer exists is closed; a throttled read is an empty read;
- a shard whose iterator ends, or whose ending sequence number was read, is closed
  (ESM-SPEC §5: its children may start once it is fully acked).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.shards.model import (
    TRIM_HORIZON,
    ExpiredIterator,
    Page,
    ShardGone,
    StreamApi,
    Throttled,
    TrimmedData,
    seq_at_or_after,
)
from esm.records import Record

log = logging.getLogger(__name__)

Convert = Callable[[dict[str, Any], str], Record]


@dataclass(eq=False)
class ShardState:
    """Reader-side state of one shard this replica holds."""

    shard_id: str
    checkpoint: str
    ending_sequence: str | None = None
    iterator: str | None = None
    last_read: str | None = None
    buffer: deque[Record] = field(default_factory=deque)
    outstanding: int = 0  # handed out, not yet acked
    closed: bool = False
    paused: bool = False
    next_fetch_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch did: whether records arrived, and whether the shard reached its end
    (so the reader looks for its children now)."""

    got_records: bool
    reached_end: bool = False


class ShardFetcher:
    """`fetch(shard)` reads up to `max_records_per_fetch` records into `shard.buffer`.
    `convert(raw, shard_id)` turns a raw record into a Record."""

    def __init__(self, *, api: StreamApi, convert: Convert, max_records_per_fetch: int,
                 poll_interval_seconds: float) -> None:
        self.api = api
        self.convert = convert
        self.max_records_per_fetch = max_records_per_fetch
        self.poll_interval_seconds = poll_interval_seconds  # only named in the log

    def fetch(self, shard: ShardState) -> Fetched:
        """One GetRecords for `shard`, buffering what it returns (see the module docstring)."""
        try:
            page = self._read(shard)
        except ShardGone:
            log.warning("shard %s no longer exists; treating it as finished", shard.shard_id)
            shard.closed = True
            return Fetched(False)
        except Throttled:
            # the shard's read limit is shared with other consumers: skip this interval
            log.debug("shard %s: read throttled; trying again next interval", shard.shard_id)
            return Fetched(False)
        if page is None:
            return Fetched(False)
        for raw in page.records:
            record = self.convert(raw, shard.shard_id)
            shard.buffer.append(record)
            shard.last_read = record.position
        shard.iterator = page.next_iterator
        if page.next_iterator is None or _past_end(shard):
            shard.closed = True
            shard.iterator = None
            return Fetched(bool(page.records), reached_end=True)
        return Fetched(bool(page.records))

    def _read(self, shard: ShardState) -> Page | None:
        """GetRecords with iterator recovery: an expired iterator, or a position trimmed
        under a live one, is replaced once (see `_new_iterator`). If the fresh iterator
        fails too, this interval is an empty read (None) and the next one tries again."""
        for _ in (1, 2):
            if shard.iterator is None:
                shard.iterator = self._new_iterator(shard)
            try:
                return self.api.read(shard.iterator, self.max_records_per_fetch)
            except (ExpiredIterator, TrimmedData) as exc:
                log.info("shard %s: %s; getting a new iterator", shard.shard_id,
                         "iterator expired" if isinstance(exc, ExpiredIterator)
                         else "position trimmed")
                shard.iterator = None
        log.warning("shard %s: a fresh iterator failed at once; trying again in %.2f s",
                    shard.shard_id, self.poll_interval_seconds)
        return None

    def _new_iterator(self, shard: ShardState) -> str:
        start = shard.last_read or shard.checkpoint
        try:
            return self.api.iterator(shard.shard_id, start)
        except TrimmedData:
            log.warning("shard %s: position %s is past the stream's retention; records "
                        "before TRIM_HORIZON are lost", shard.shard_id, start)
            return self.api.iterator(shard.shard_id, TRIM_HORIZON)


def _past_end(shard: ShardState) -> bool:
    """Emulators keep handing out iterators on closed shards: a closed shard whose ending
    sequence number was read (or checkpointed) is done."""
    end = shard.ending_sequence
    last = shard.last_read or (shard.checkpoint if shard.checkpoint[:1].isdigit() else None)
    return end is not None and last is not None and seq_at_or_after(last, end)
