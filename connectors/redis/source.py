"""Redis Streams source (`type: redis_streams`): queue family, one lane per stream key.

Guarantees and how they are kept (DESIGN §3):
- Reads go through a consumer group (created with MKSTREAM if missing; TRIM_HORIZON → id
  `0`, LATEST → `$`), under a consumer name unique per replica (`<hostname>-<pid>` unless
  configured), so replicas split the entries between them.
- An entry is XACKed only when the core acks it: the target succeeded, the filter rejected
  it, or its notice is durable in the on-failure destination. Each delivery is acked at
  most once; an entry released by the core is never acked by that delivery.
- Release does nothing on purpose: the entry stays pending and is reclaimed with XAUTOCLAIM
  once idle for `visibility_timeout_seconds`, by this replica or another (a crashed
  replica's entries too). A release `delay_seconds` is therefore not honoured: redelivery
  always waits for the visibility timeout, like an SQS message after a failed batch
  (ESM-SPEC §4.2).
- `Record.delivery_count` is the attempt at the target: 1 for new entries, 1 + the failed
  attempts esm recorded for reclaimed ones (`redis_attempts`), so the core dead-letters
  after `max_deliveries` failed attempts (DESIGN §3). Entries a crashed replica read ahead
  and never invoked come back with their count unchanged. The event's `deliveryCount` is
  Redis's own delivery counter (XPENDING), which also bounds a crash loop.
- An entry still in flight here is not delivered a second time by this replica when it
  reclaims it, and (`extend_visibility`, `keeper.py`) a keeper thread resets the idle time
  of every entry held here, so no other replica reclaims an entry waiting here behind a
  busy target. A replica killed with entries held stops resetting them: they are
  reclaimed after the visibility timeout.
- Reads and XACKs go through one pipelined connection (`RedisPipe`): an XACK is sent at
  once and its reply read by the next poll, lag or close, and while a stream is being read
  fast the next XREADGROUP is sent ahead (`StreamReads`), so Redis answers it while the
  reader ingests. An XACK lost with a crash leaves its entries pending: delivered again.
- With parallelization_factor > 1 a stream runs up to that many batches at once, one per
  slot of the `ordering_key_field` value: entries of one key are invoked in stream order,
  one batch at a time; entries without the field share the stream's own slot.
- Redis errors become SourceUnavailable; the supervisor closes this source and builds a new
  one with backoff. Unacked entries stay pending and are reclaimed, so nothing is lost.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import groupby
from operator import attrgetter
from typing import Any, ClassVar

import orjson
import redis

from connectors.redis.attempts import forget_command, increment_commands
from connectors.redis.client import build_client, read_credentials
from connectors.redis.entries import EntryDecoder, fresh_payload
from connectors.redis.entries import text as _text
from connectors.redis.group import create_groups, forget_consumer_if_idle
from connectors.redis.keeper import PendingKeeper
from connectors.redis.pipe import RedisPipe
from connectors.redis.reads import StreamReads
from connectors.redis.reclaim import Reclaimer
from connectors.redis.settings import (
    RedisStreamsSettings,
    mapping_problems,
    settings_problems,
)
from esm.errors import ConfigError, SourceUnavailable
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record, records_event_body

log = logging.getLogger(__name__)

_ENVELOPE_BYTES = len(b'{"Records":[]}')
_lane_of = attrgetter("lane")


class RedisStreamsSource:
    """Reads one or more stream keys through a consumer group (see the module docstring)."""

    Settings: ClassVar[type] = RedisStreamsSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        # AWS ties BatchSize > 10 to a window only for SQS, Kinesis and DynamoDB; Redis has
        # no such rule, and a forced window adds its length to every light-load delivery.
        family="queue", default_batch_size=10, max_batch_size=10000,
        window_required_above_10=False, supports_on_failure_destination=True,
        batch_info_key="RedisStreamBatchInfo", supports_parallelization_factor=True)

    def __init__(self, settings: RedisStreamsSettings, context: ConnectorContext,
                 client: redis.Redis | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        problems = settings_problems(settings)
        if problems:
            raise ConfigError(problems)
        self.settings = settings
        self.context = context
        self.consumer = settings.consumer_name or f"{socket.gethostname()}-{os.getpid()}"
        self._owns_client = client is None
        self._client = client or build_client(settings, read_credentials(settings, environ))
        self._streams = tuple(settings.streams)
        self._group = settings.consumer_group
        self._decoder = EntryDecoder(settings.url, self._streams, self._group,
                                     settings.body_field, settings.ordering_key_field,
                                     context.wants_filter_view)
        self._paused: set[str] = set()
        self._reclaimer = Reclaimer(self._client, self._group, self.consumer,
                                    settings.visibility_timeout_seconds,
                                    settings.max_deliveries)
        self._pipe = RedisPipe(self._client, decode_text=True)  # EntryDecoder.new_entries
        self._reads = StreamReads(
            pipe=self._pipe, decoder=self._decoder, reclaimer=self._reclaimer,
            streams=self._streams, group=self._group, consumer=self.consumer,
            clock=context.clock, block_milliseconds=settings.block_milliseconds,
            reclaim_interval_seconds=min(1.0, settings.visibility_timeout_seconds / 2),
            handle=self)
        # Entries this instance has read and not yet seen acked or released, per stream.
        self._held = self._reads.held
        self._keeper: PendingKeeper | None = None

    @classmethod
    def check_mapping(cls, settings: RedisStreamsSettings,
                      mapping_data: dict[str, Any]) -> list[str]:
        return mapping_problems(settings, mapping_data)

    # -- reader-thread methods ----------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        with self._translate("open"):
            self._create_groups()
        if self.settings.extend_visibility:
            self._keeper = PendingKeeper(self._client, self._group, self.consumer,
                                         self.settings.visibility_timeout_seconds, self._held)
            self._keeper.start(f"redis-keeper-{self.context.mapping}")
        log.info("redis_streams: consumer %s joined group %s on %d stream(s)",
                 self.consumer, self._group, len(self._streams))
        listener.lanes_assigned(list(self._streams))

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        active = [s for s in self._streams if s not in self._paused]
        with self._translate("poll"):
            try:
                # XACK replies, and a read sent ahead. While batches are in flight (a
                # short timeout) only what has arrived: the reader has settlements to
                # apply meanwhile, and comes back within a batch.
                wait = self._reads.waits(timeout_seconds)
                self._pipe.collect(wait)
                if not active:
                    return []  # at once: the reader waits for the settlements that resume one
                self._reads.fill(active, max_records, timeout_seconds, wait)
            except redis.ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                log.warning("redis_streams: group %s vanished (stream deleted?); recreating",
                            self._group)
                self._create_groups()
            return self._reads.take(active, max_records)

    def ack(self, records: Sequence[Record]) -> None:
        """XACK per stream, sent on the pipe (its reply is read by the next poll). A record
        this instance already acked or saw released is skipped; one read by an earlier
        instance (before a reconnect) is acked anyway, since Redis ignores ids that are no
        longer pending."""
        by_stream: dict[str, list[str]] = {}
        for lane, group in groupby(records, _lane_of):  # a lane run at a time
            held = self._held.get(lane)
            if held is None:
                continue
            run = list(group)
            ids = [r.item_id for r in run]
            if held.issuperset(ids) and all(r.handle is self for r in run):
                held.difference_update(ids)  # the usual case, in C loops
            else:
                ids = [i for r in run if r.handle is self and (i := r.item_id) in held]
                held.difference_update(ids)
                # read by an earlier instance (before a reconnect): ack anyway
                ids += [r.item_id for r in run if r.handle is not self]
            by_stream.setdefault(lane, []).extend(ids)
        with self._translate("ack"):
            for stream, ids in by_stream.items():
                if ids:
                    self._pipe.send_with_ids(None, ("XACK", stream, self._group), ids)
            self._forget_failed_attempts(records)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Leave the entries pending: XAUTOCLAIM redelivers them after the visibility
        timeout. `delay_seconds` is not honoured (see the module docstring).

        The core releases for two reasons: the records failed at the target (the failure
        policy's Release, with its backoff delay), or the mapping is stopping and hands back
        records it buffered and never invoked (delay 0). Only the first is a failed attempt
        counted against `max_deliveries`."""
        failed = delay_seconds > 0 or not self.context.stop.is_set()
        mine = [r for r in records if r.handle is self]
        for record in mine:
            self._held.get(record.lane, set()).discard(record.item_id)
        if not failed:
            return
        with self._translate("release"):
            for lane, group in groupby(mine, _lane_of):
                for command in increment_commands(self._group, lane,
                                                  [r.item_id for r in group]):
                    self._pipe.send(None, *command)

    def pause(self, lanes: Collection[str]) -> None:
        self._paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._paused.difference_update(lanes)

    def lag(self) -> Mapping[str, float]:
        """Per stream: entries not yet delivered to the group (XINFO GROUPS `lag`) plus
        entries delivered and not acked (`pending`). `lag` is unknown to Redis after some
        deletions; then only `pending` counts."""
        with self._translate("lag"):
            self._pipe.collect()  # acks sent so far count as done
            pipe = self._client.pipeline(transaction=False)
            for stream in self._streams:
                pipe.xinfo_groups(stream)
            replies = pipe.execute(raise_on_error=False)
        out: dict[str, float] = {}
        for stream, groups in zip(self._streams, replies, strict=True):
            if isinstance(groups, Exception):
                continue
            for group in groups:
                if _text(group.get("name")) == self._group:
                    out[stream] = float((group.get("lag") or 0) + (group.get("pending") or 0))
        return out

    def close(self) -> None:
        """Forget this consumer in the group when it holds no pending entry (names are
        per process, so they would pile up); keep it when it does, so that its entries
        are reclaimed by others."""
        if self._keeper is not None:  # first: a claim after the forget below would re-add us
            self._keeper.close()
        try:
            self._pipe.close()  # confirms the acks sent so far
            for stream in self._streams:
                forget_consumer_if_idle(self._client, stream, self._group, self.consumer)
        except redis.RedisError as exc:
            log.debug("redis_streams: could not remove consumer on close: %s", exc)
        finally:
            if self._owns_client:
                self._client.close()

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: XADD each record's fields to its stream again (a new
        entry id; `attributes.binaryFields` are base64-decoded back to bytes), in one
        pipeline. Errors become SourceUnavailable."""
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            binary = set((record.get("attributes") or {}).get("binaryFields") or ())
            fields = {name: base64.b64decode(value) if name in binary else value
                      for name, value in (record.get("fields") or {}).items()}
            pipe.xadd(record.get("stream") or self._streams[0], fields)
        with self._translate("produce"):
            pipe.execute()

    # -- pure methods -------------------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return {"Records": [r.payload for r in records]}

    def fresh_event(self, records: Sequence[Record]) -> dict[str, Any]:
        """`build_event` sharing no dict or list with the records (FreshEvents)."""
        return {"Records": [fresh_payload(r.payload) for r in records]}

    def encode_event(self, records: Sequence[Record]) -> bytes:
        """The encoded event, joined from the records' encodings (EncodesEvents)."""
        body = records_event_body(records)
        return body if body is not None else orjson.dumps(self.build_event(records))

    def event_overhead_bytes(self) -> int:
        return _ENVELOPE_BYTES

    def item_identifier(self, value: object) -> str | None:
        """batchItemFailures itemIdentifier = messageId, a non-empty string."""
        return value if isinstance(value, str) and value else None

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        return self._decoder.batch_info(records)

    # -- internals ----------------------------------------------------------------------

    def _create_groups(self) -> None:
        create_groups(self._client, self._streams, self._group,
                      self.settings.starting_position)

    def _forget_failed_attempts(self, records: Sequence[Record]) -> None:
        """HDEL the failed-attempt counts of finished entries. Only a record delivered after
        a counted failure (attempt > 1) can have one, so the usual ack sends nothing."""
        retried = [r for r in records if r.delivery_count > 1]
        for lane, group in groupby(retried, _lane_of):
            command = forget_command(self._group, lane, [r.item_id for r in group])
            if command:
                self._pipe.send(None, *command)

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise SourceUnavailable(
                f"redis_streams {action} failed (group {self._group}): "
                f"{type(exc).__name__}: {exc}") from exc
