"""The part of a shard source that does not depend on the service: the esm Source methods
wired to a ShardReader, a Leaser and a lease table, the traits and the notice's batch info.
DynamoDB Streams and Kinesis subclass it and supply the service adapter, record conversion
and the event element's shape."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import orjson

from connectors.aws.clients import make_client, region_for
from connectors.shards.leases import Leaser, LeaseTable
from connectors.shards.model import StreamApi
from connectors.shards.reader import ShardReader
from connectors.shards.settings import (
    ShardSourceSettings,
    build_lease_table,
    worker_id_for,
)
from esm.clock import iso_utc
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

log = logging.getLogger(__name__)

ENVELOPE = orjson.dumps({"Records": []})


def shard_traits(batch_info_key: str) -> SourceTraits:
    """What Kinesis and DynamoDB Streams share (ESM-SPEC §1.2, §4.3, §5): stream family,
    BatchSize 100 by default and at most 10000, a window needed above 10, on-failure
    destinations, and order per key with parallelization_factor > 1."""
    return SourceTraits(
        family="stream", default_batch_size=100, max_batch_size=10000,
        window_required_above_10=True, supports_on_failure_destination=True,
        supports_parallelization_factor=True, supports_tumbling_windows=True, keeps_windows=True,
        batch_info_key=batch_info_key)


class ShardSource:
    """Base of the shard sources; only the reader thread calls the client-touching methods."""

    traits: ClassVar[SourceTraits]
    service: ClassVar[str]  # boto3 service name
    # notice timestamps: Kinesis has milliseconds, DynamoDB none (ESM-SPEC §4.5)
    notice_millis: ClassVar[bool]

    def __init__(self, settings: ShardSourceSettings, context: ConnectorContext,
                 client: Any = None, lease_table: LeaseTable | None = None) -> None:
        self.settings = settings
        self.context = context
        self._client = client
        self._lease_table = lease_table
        self.reader: ShardReader | None = None
        self.region = region_for(settings, self.resource_arn())

    # -- supplied by subclasses -------------------------------------------------------------

    def resource_arn(self) -> str | None:
        raise NotImplementedError

    def make_api(self, client: Any) -> StreamApi:
        raise NotImplementedError

    def convert(self, raw: dict[str, Any], shard_id: str) -> Record:
        raise NotImplementedError

    def starting_checkpoint(self) -> str:
        raise NotImplementedError

    def event_source_arn(self) -> str:
        """The stream ARN put in events and notices."""
        raise NotImplementedError

    def poll_interval_seconds(self) -> float:
        raise NotImplementedError

    # -- reader-thread methods ----------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        s = self.settings
        if self._client is None:
            self._client = make_client(self.service, s, region=self.region)
        if self._lease_table is None:
            self._lease_table = build_lease_table(s, self.region)
        api = self.make_api(self._client)
        leaser = Leaser(self._lease_table, self.context.mapping, worker_id_for(s),
                        s.checkpoint.lease_duration_seconds, self.context.clock)
        self.reader = ShardReader(
            api=api, leaser=leaser, convert=self.convert, clock=self.context.clock,
            stop=self.context.stop, starting_checkpoint=self.starting_checkpoint(),
            poll_interval_seconds=self.poll_interval_seconds(),
            max_records_per_fetch=s.max_records_per_fetch,
            discovery_interval_seconds=s.shard_discovery_interval_seconds)
        log.info("%s source open: stream=%s worker=%s checkpoint=%s", self.service,
                 api.stream_arn, leaser.worker_id, s.checkpoint.type)
        self.reader.open(listener)

    def _reader(self) -> ShardReader:
        if self.reader is None:
            raise RuntimeError("source used before open()")
        return self.reader

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        return self._reader().poll(max_records, timeout_seconds)

    def ack(self, records: Sequence[Record]) -> None:
        self._reader().ack(records)

    def load_window(self, lane: str) -> Mapping[str, Any] | None:
        """esm.interfaces.KeepsWindows: the window document saved on the shard's lease row
        (read with the lease when it was taken), so a lease handover or a restart resumes
        the window with its state."""
        lease = self._reader().leaser.leases.get(lane)
        if lease is None or lease.window is None:
            return None
        document: Mapping[str, Any] = orjson.loads(lease.window)
        return document

    def save_window(self, lane: str, document: Mapping[str, Any]) -> None:
        """Saved on the lease row on condition that this replica still owns the lease
        (a replica that lost it never moves another's window)."""
        if not self._reader().leaser.save_window(lane, orjson.dumps(document).decode()):
            log.warning("shard %s: window not saved: lease lost", lane)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Stream sources never get release (the core retries the batch itself)."""

    def pause(self, lanes: Collection[str]) -> None:
        self._reader().pause(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._reader().resume(lanes)

    def lag(self) -> Mapping[str, float]:
        return self.reader.lag() if self.reader is not None else {}

    def close(self) -> None:
        try:
            if self.reader is not None:
                self.reader.close()
        except Exception as exc:  # leases then expire on their own
            log.warning("%s source: releasing leases failed: %s", self.service, exc)
        finally:
            self.reader = None
            if self._lease_table is not None:
                self._lease_table.close()
            if self._client is not None and hasattr(self._client, "close"):
                self._client.close()

    # -- pure methods -------------------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return {"Records": [r.payload for r in records]}

    def event_overhead_bytes(self) -> int:
        return len(ENVELOPE)

    def item_identifier(self, value: object) -> str | None:
        """A SequenceNumber string (ESM-SPEC §4.3); anything else fails the whole batch."""
        return value if isinstance(value, str) and value else None

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        """`KinesisBatchInfo` / `DDBStreamBatchInfo` (ESM-SPEC §4.5): the first and last
        record of the discarded batch; every field present, null for an empty batch."""
        first, last = (records[0], records[-1]) if records else (None, None)
        millis = self.notice_millis
        return {
            "shardId": first.lane if first else None,
            "startSequenceNumber": first.position if first else None,
            "endSequenceNumber": last.position if last else None,
            "approximateArrivalOfFirstRecord": iso_utc(first.timestamp, millis)
            if first else None,
            "approximateArrivalOfLastRecord": iso_utc(last.timestamp, millis) if last else None,
            "batchSize": len(records),
            "streamArn": self.event_source_arn(),
        }
