"""Shard leases: which replica reads which shard, the Kinesis Client Library's model.

Every shard of a mapping has one row in a lease table (SQLite file or DynamoDB table) with
an owner, a lease counter and the shard's checkpoint. All writes are conditional, so two
replicas never both believe they own a lease after a write succeeded:
- renew: the owner bumps the counter, on condition that the counter is what it last wrote;
- take: anyone may take a lease whose counter has not moved for `lease_duration_seconds`
  (as observed on its own monotonic clock, so replicas need no synchronised clocks), or
  one with no owner, on condition that the counter is still the one observed;
- balance: a replica holding fewer than ceil(active leases / live replicas) takes expired
  leases first, then steals one lease per round from the most loaded replica;
- checkpoint: written on condition that the writer still owns the lease, so a replica that
  lost its lease can never move a checkpoint.
A replica that loses a lease stops reading that shard at its next renewal; a few records
may be delivered twice in between (at-least-once, ESM-SPEC §7).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from connectors.shards.model import SHARD_END
from esm.interfaces import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lease:
    """One lease row. `owner` None means free."""

    shard_id: str
    owner: str | None
    counter: int
    checkpoint: str
    parent_ids: tuple[str, ...] = ()
    window: str | None = None  # the shard's tumbling-window document (JSON), if any

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END


class LeaseTable(Protocol):
    """Conditional storage of lease rows; every method is one atomic write or read.
    Transient storage errors raise esm.errors.SourceUnavailable."""

    def list(self, mapping: str) -> list[Lease]: ...

    def create(self, mapping: str, lease: Lease) -> bool:
        """Insert if no row exists for the shard; False if one did."""

    def renew(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        """counter += 1 if owner and counter are as given."""

    def take(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        """owner := owner, counter += 1 if the counter is as given."""

    def checkpoint(self, mapping: str, shard_id: str, owner: str, checkpoint: str) -> bool:
        """Set the checkpoint if `owner` still owns the lease."""

    def save_window(self, mapping: str, shard_id: str, owner: str, window: str) -> bool:
        """Set the tumbling-window document if `owner` still owns the lease."""

    def release(self, mapping: str, shard_id: str, owner: str) -> bool:
        """owner := none if `owner` owns it (a clean stop hands shards over at once)."""

    def close(self) -> None: ...


class Leaser:
    """One replica's view of the lease table; called only from the reader thread."""

    def __init__(self, table: LeaseTable, mapping: str, worker_id: str,
                 lease_duration_seconds: float, clock: Clock) -> None:
        self.table = table
        self.mapping = mapping
        self.worker_id = worker_id
        self.lease_duration_seconds = lease_duration_seconds
        self.clock = clock
        self.held: dict[str, int] = {}  # shard → counter this replica last wrote
        self.leases: dict[str, Lease] = {}  # the last listing
        self._seen: dict[str, tuple[str | None, int, float]] = {}  # owner, counter, since

    def refresh(self) -> None:
        """Read every lease row and note when each one last changed (expiry detection)."""
        now = self.clock.monotonic()
        self.leases = {lease.shard_id: lease for lease in self.table.list(self.mapping)}
        for shard, lease in self.leases.items():
            seen = self._seen.get(shard)
            if seen is None or seen[:2] != (lease.owner, lease.counter):
                self._seen[shard] = (lease.owner, lease.counter, now)

    def tick(self) -> tuple[set[str], set[str]]:
        """Refresh, renew what is held, take what balance allows: (gained, lost) shards."""
        self.refresh()
        lost = self._renew()
        gained = self._acquire()
        return gained, lost

    def _renew(self) -> set[str]:
        lost: set[str] = set()
        for shard, counter in list(self.held.items()):
            if self.table.renew(self.mapping, shard, self.worker_id, counter):
                self.held[shard] = counter + 1
                continue
            log.warning("mapping %s: lease on shard %s lost to another replica",
                        self.mapping, shard)
            del self.held[shard]
            lost.add(shard)
        return lost

    def expired(self, lease: Lease) -> bool:
        if lease.owner is None:
            return True
        if lease.owner == self.worker_id:
            return lease.shard_id not in self.held  # a previous life of this replica
        since = self._seen.get(lease.shard_id, (None, 0, self.clock.monotonic()))[2]
        return self.clock.monotonic() - since >= self.lease_duration_seconds

    def _acquire(self) -> set[str]:
        active = [lease for lease in self.leases.values() if not lease.finished]
        live_owners = {lease.owner for lease in active
                       if lease.owner and not self.expired(lease)} | {self.worker_id}
        target = math.ceil(len(active) / len(live_owners)) if active else 0
        need = target - len(self.held)
        if need <= 0:
            return set()
        free = sorted((lease for lease in active
                       if lease.shard_id not in self.held and self.expired(lease)),
                      key=lambda lease: lease.shard_id)
        gained = self._take(free[:need])
        if not gained and not free:
            gained = self._take(self._steal_candidate(active, target))
        return gained

    def _steal_candidate(self, active: list[Lease], target: int) -> list[Lease]:
        """One lease of the most loaded replica, if it holds more than its share."""
        counts: dict[str, list[Lease]] = {}
        for lease in active:
            if lease.owner and lease.owner != self.worker_id:
                counts.setdefault(lease.owner, []).append(lease)
        if not counts:
            return []
        owner, leases = max(counts.items(), key=lambda item: (len(item[1]), item[0]))
        return [sorted(leases, key=lambda lease: lease.shard_id)[-1]] \
            if len(leases) > target else []

    def _take(self, leases: Iterable[Lease]) -> set[str]:
        gained: set[str] = set()
        for lease in leases:
            if self.table.take(self.mapping, lease.shard_id, self.worker_id, lease.counter):
                self.held[lease.shard_id] = lease.counter + 1
                gained.add(lease.shard_id)
                log.info("mapping %s: took lease on shard %s (from %s)", self.mapping,
                         lease.shard_id, lease.owner or "nobody")
        return gained

    def checkpoint(self, shard_id: str, checkpoint: str) -> bool:
        """Persist a checkpoint for a held shard; False if the lease was lost meanwhile."""
        return self._write_held(shard_id, self.table.checkpoint, "checkpoint", checkpoint)

    def save_window(self, shard_id: str, window: str) -> bool:
        """Persist a held shard's window document; False if the lease was lost meanwhile."""
        return self._write_held(shard_id, self.table.save_window, "window", window)

    def _write_held(self, shard_id: str, write: Callable[[str, str, str, str], bool],
                    field_name: str, value: str) -> bool:
        if shard_id not in self.held:
            return False
        ok = write(self.mapping, shard_id, self.worker_id, value)
        lease = self.leases.get(shard_id)
        if ok and lease is not None:
            changes: dict[str, Any] = {field_name: value}
            self.leases[shard_id] = replace(lease, **changes)
        return ok

    def release(self, shard_id: str) -> None:
        if self.held.pop(shard_id, None) is not None:
            self.table.release(self.mapping, shard_id, self.worker_id)

    def release_all(self) -> None:
        for shard in list(self.held):
            self.release(shard)
