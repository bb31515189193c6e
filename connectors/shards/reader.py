"""The shard reader: the source mechanics shared by DynamoDB Streams and Kinesis.

Called only from the mapping's reader thread (esm.interfaces.Source contract). It
- discovers shards every `shard_discovery_interval_seconds` (and as soon as one closes)
  and creates their lease rows (see `new_checkpoint` for where a new shard starts);
- renews, takes and balances leases (`Leaser`), reporting gained / lost shards to the
  core's LaneListener as lanes assigned / revoked;
- reads a shard only when its parents are finished (`SHARD_END`), so order holds across
  splits and merges (ESM-SPEC §5);
- fetches (`fetch.py`: one iterator per shard, recovered when it expires or its
  position is trimmed) at most one GetRecords per shard per `poll_interval_seconds`
  (DynamoDB about 4/s, Kinesis 1/s), up to `max_records_per_fetch` records kept per shard
  until handed out, so memory is bounded by configuration; a throttled read, or an
  iterator that fails again at once, is an empty read retried one interval later;
- hands out buffered records starting from a different shard each poll, so a busy shard
  cannot starve the others;
- checkpoints the last acked sequence number per shard on `ack`; a shard that is closed,
  read to its end and fully acked is checkpointed `SHARD_END` and its lease released, so
  its children may start.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from connectors.shards.fetch import Convert, ShardFetcher, ShardState
from connectors.shards.leases import Lease, Leaser
from connectors.shards.model import (
    LATEST,
    SHARD_END,
    TRIM_HORIZON,
    ShardInfo,
    StreamApi,
    parents_first,
)
from esm.interfaces import Clock, LaneListener
from esm.records import Record

log = logging.getLogger(__name__)


class ShardReader:
    """See the module docstring. `convert(raw, shard_id)` turns a raw record into a Record."""

    def __init__(self, *, api: StreamApi, leaser: Leaser, convert: Convert, clock: Clock,
                 stop: Any, starting_checkpoint: str, poll_interval_seconds: float,
                 max_records_per_fetch: int, discovery_interval_seconds: float) -> None:
        self.api = api
        self.leaser = leaser
        self.clock = clock
        self.stop = stop
        self.starting_checkpoint = starting_checkpoint
        self.poll_interval_seconds = poll_interval_seconds
        self.discovery_interval_seconds = discovery_interval_seconds
        self.renew_interval_seconds = leaser.lease_duration_seconds / 3
        self.fetcher = ShardFetcher(api=api, convert=convert,
                                    max_records_per_fetch=max_records_per_fetch,
                                    poll_interval_seconds=poll_interval_seconds)
        self.shards: dict[str, ShardState] = {}
        self._listed: dict[str, ShardInfo] = {}
        self._listener: LaneListener | None = None
        self._next_discovery = 0.0
        self._next_renewal = 0.0
        self._turn = 0  # rotates the shard hand-out starts from

    # -- lifecycle --------------------------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        self._listener = listener
        self._sync(force=True)

    def close(self) -> None:
        """Hand every held lease back at once, so another replica (or the next start of
        this one) continues without waiting for expiry."""
        try:
            self.leaser.release_all()
        finally:
            self.shards.clear()

    # -- discovery and leases ---------------------------------------------------------------

    def _sync(self, force: bool = False) -> None:
        now = self.clock.monotonic()
        if force or now >= self._next_discovery:
            self._next_discovery = now + self.discovery_interval_seconds
            self._discover()
        if force or now >= self._next_renewal:
            self._next_renewal = now + self.renew_interval_seconds
            gained, lost = self.leaser.tick()
            self._apply_lease_changes(gained, lost)

    def _discover(self) -> None:
        listed = self.api.list_shards()
        self._listed = {s.shard_id: s for s in listed}
        self.leaser.refresh()
        existing = dict(self.leaser.leases)
        fresh: dict[str, str] = {}
        for info in parents_first(listed):
            if info.shard_id in existing:
                continue
            checkpoint = self.new_checkpoint(info, existing, fresh)
            fresh[info.shard_id] = checkpoint
            self.leaser.table.create(self.leaser.mapping, Lease(
                info.shard_id, None, 0, checkpoint, info.parent_ids))
            self._next_renewal = 0.0  # take the new leases now, not at the next renewal
        for shard in self.shards.values():
            listing = self._listed.get(shard.shard_id)
            if listing is not None and listing.ending_sequence:
                shard.ending_sequence = listing.ending_sequence

    def new_checkpoint(self, info: ShardInfo, existing: Mapping[str, Lease],
                       fresh: Mapping[str, str]) -> str:
        """Where a newly seen shard starts. A child of a shard that is (or was) read starts
        at TRIM_HORIZON, else records written after the split would be lost. Otherwise the
        mapping's starting position applies; with LATEST, closed shards are skipped."""
        for parent in info.parent_ids:
            if parent in existing or fresh.get(parent, SHARD_END) != SHARD_END:
                return TRIM_HORIZON
        if self.starting_checkpoint == LATEST and info.ending_sequence:
            return SHARD_END
        return self.starting_checkpoint

    def _apply_lease_changes(self, gained: set[str], lost: set[str]) -> None:
        listener = self._listener
        revoked = lost & set(self.shards)
        if revoked and listener is not None:
            listener.lanes_revoked(revoked)  # drains in-flight batches first
        for shard_id in revoked:
            self.shards.pop(shard_id, None)
        for shard_id in sorted(gained):
            lease = self.leaser.leases[shard_id]
            info = self._listed.get(shard_id)
            self.shards[shard_id] = ShardState(shard_id, lease.checkpoint,
                                           info.ending_sequence if info else None)
        if gained and listener is not None:
            listener.lanes_assigned(gained)

    def _readable(self, shard: ShardState) -> bool:
        """Held, not paused, not finished, and every parent finished (or gone)."""
        if shard.paused or shard.checkpoint == SHARD_END:
            return False
        lease = self.leaser.leases.get(shard.shard_id)
        for parent in lease.parent_ids if lease else ():
            parent_lease = self.leaser.leases.get(parent)
            if parent_lease is not None and not parent_lease.finished:
                return False
        return True

    # -- polling ----------------------------------------------------------------------------

    def poll(self, max_records: int, timeout_seconds: float) -> list[Record]:
        deadline = self.clock.monotonic() + timeout_seconds
        while True:
            self._sync()
            self._finish_closed_shards()
            out = self._hand_out(max_records)
            if out:
                return out
            if self._fetch_due():
                continue
            wait = min(self._next_fetch_due(), deadline) - self.clock.monotonic()
            if wait <= 0 and self.clock.monotonic() >= deadline:
                return []
            if self.clock.wait(self.stop, max(wait, 0.001)):
                return []

    def _hand_out(self, limit: int) -> list[Record]:
        out: list[Record] = []
        shards = list(self.shards.values())
        self._turn = (self._turn + 1) % max(len(shards), 1)
        for shard in shards[self._turn:] + shards[:self._turn]:
            if not self._readable(shard):
                continue
            while shard.buffer and len(out) < limit:
                out.append(shard.buffer.popleft())
                shard.outstanding += 1
            if len(out) >= limit:
                break
        return out

    def _fetch_due(self) -> bool:
        """One GetRecords for each due shard; True if any records arrived."""
        now = self.clock.monotonic()
        got = False
        for shard in list(self.shards.values()):
            if shard.closed or shard.buffer or now < shard.next_fetch_at \
                    or not self._readable(shard):
                continue
            shard.next_fetch_at = now + self.poll_interval_seconds
            got = self._fetch(shard) or got
        return got

    def _next_fetch_due(self) -> float:
        dues = [s.next_fetch_at for s in self.shards.values()
                if not s.closed and not s.buffer and self._readable(s)]
        return min(dues + [self._next_renewal, self._next_discovery])

    def _fetch(self, shard: ShardState) -> bool:
        fetched = self.fetcher.fetch(shard)
        if fetched.reached_end:
            self._next_discovery = 0.0  # look for its children now
        return fetched.got_records

    def _finish_closed_shards(self) -> None:
        for shard in list(self.shards.values()):
            if shard.closed and not shard.buffer and shard.outstanding == 0:
                self._finish(shard)

    def _finish(self, shard: ShardState) -> None:
        log.info("shard %s: read to its end and acked; children may start", shard.shard_id)
        ending = getattr(self._listener, "lane_ending", None)
        if ending is not None:  # resharding closes a tumbling window (ESM-SPEC §2.5)
            ending(shard.shard_id)
        if self.leaser.checkpoint(shard.shard_id, SHARD_END):
            self.leaser.release(shard.shard_id)
        self.shards.pop(shard.shard_id, None)
        self._next_renewal = 0.0  # balance again at once: children may be waiting
        if self._listener is not None:
            self._listener.lanes_revoked([shard.shard_id])

    # -- settling and flow control --------------------------------------------------------

    def ack(self, records: Sequence[Record]) -> None:
        """Per shard, the core passes a contiguous run: checkpoint its last record. A
        checkpoint refused because the lease was taken meanwhile makes the next poll renew
        first, so the lane is revoked before any more of its records are handed out; the
        new owner resumes from the checkpoint it found."""
        last: dict[str, Record] = {}
        counts: dict[str, int] = {}
        for record in records:
            last[record.lane] = record
            counts[record.lane] = counts.get(record.lane, 0) + 1
        for lane, record in last.items():
            shard = self.shards.get(lane)
            if shard is None:
                continue  # lease lost meanwhile: the new owner resumes from its checkpoint
            shard.outstanding -= counts[lane]
            if self.leaser.checkpoint(lane, record.position):
                shard.checkpoint = record.position
            else:
                log.warning("shard %s: checkpoint %s not saved: lease lost", lane,
                            record.position)
                # the next poll renews first, so the lane is revoked before any more of
                # its records are handed out
                self._next_renewal = 0.0

    def pause(self, lanes: Collection[str]) -> None:
        for lane in lanes:
            if lane in self.shards:
                self.shards[lane].paused = True

    def resume(self, lanes: Collection[str]) -> None:
        for lane in lanes:
            if lane in self.shards:
                self.shards[lane].paused = False

    def lag(self) -> Mapping[str, float]:
        """Records read from the service but not yet acked, per held shard."""
        return {s.shard_id: float(len(s.buffer) + s.outstanding) for s in self.shards.values()}

