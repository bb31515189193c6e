"""`esm redrive`: replay the notices of a mapping's on-failure destination.

Each notice's `payload` (the event of the failed batch, DESIGN §7) is sent again, either to
the mapping's target (rebuilt from the configuration, invoked like the daemon does) or back
to the source when its connector offers a `produce(records)` hook (the payload's records are
written to the source again). Notices without a payload (`include_payload: false`) cannot be
replayed and are counted as such.

Idempotent when interrupted: every replayed notice's id goes to a progress file
(`esm.redrive.state`) before the next one starts, and a re-run skips those ids. A notice whose
replay fails again is not marked, so the next run retries it. Destinations that consume
what they read (SQS, Kafka, see esm.redrive.sources) are acknowledged only after the id is
in the progress file, so a crash in between replays nothing twice: the re-run finds the id
and only acknowledges. `--dry-run` reads and counts without invoking, acknowledging or
writing the progress file.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from typing import Any, TextIO

from esm.clock import SystemClock
from esm.config.types import MappingConfig
from esm.errors import ConfigError, EsmError
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned
from esm.redrive.sources import NoticeEntry
from esm.redrive.state import DoneLog
from esm.runtime.assembly import build_connector

log = logging.getLogger(__name__)

Replay = Callable[[dict[str, Any]], str | None]  # event → None on success, else the reason


@dataclass
class RedriveSummary:
    total: int = 0
    replayed: int = 0
    failed: int = 0
    already_done: int = 0
    no_payload: int = 0
    ack_failed: int = 0
    dry_run: bool = False
    interrupted: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would replay" if self.dry_run else "replayed"
        out = [f"redrive{' (dry run)' if self.dry_run else ''}"
               f"{' interrupted' if self.interrupted else ''}: {self.total} notice(s)",
               f"  {verb:<24}{self.replayed}",
               f"  {'failed again':<24}{self.failed}",
               f"  {'already done (skipped)':<24}{self.already_done}",
               f"  {'no payload (skipped)':<24}{self.no_payload}"]
        if self.ack_failed:
            out.append(f"  {'left in destination':<24}{self.ack_failed}"
                       " (done; removed by the next run)")
        out += [f"  failed: {nid}: {reason}" for nid, reason in self.failures[:20]]
        return out


class ProgressBar:
    """`[#####.....] 12/40` redrawn on one terminal line, or `12 notice(s)` when the total
    is unknown (streamed destinations); silent when disabled."""

    def __init__(self, total: int | None, stream: TextIO, enabled: bool,
                 width: int = 30) -> None:
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width

    def show(self, done: int, summary: RedriveSummary) -> None:
        if not self.enabled:
            return
        counts = f" replayed={summary.replayed} failed={summary.failed}"
        if self.total is None:
            self.stream.write(f"\r{done} notice(s){counts}")
        else:
            filled = self.width * done // self.total if self.total else self.width
            self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                              f"{done}/{self.total}{counts}")
            if done >= self.total:
                self.stream.write("\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.total is None:
            self.stream.write("\n")
            self.stream.flush()


def redrive(entries: Iterable[NoticeEntry], replay: Replay, done: DoneLog, *,
            dry_run: bool = False, progress_stream: TextIO | None = None,
            stop: threading.Event | None = None) -> RedriveSummary:
    """Replay every entry not in `done`, one at a time as they are read; see the module
    docstring. A generator of entries is closed before this returns."""
    total = len(entries) if isinstance(entries, Sized) else None
    summary = RedriveSummary(total=total or 0, dry_run=dry_run)
    bar = ProgressBar(total, progress_stream or sys.stderr, progress_stream is not None)
    iterator = iter(entries)
    try:
        for count, entry in enumerate(iterator, start=1):
            if stop is not None and stop.is_set():
                summary.interrupted = True
                break
            if total is None:
                summary.total = count
            _replay_one(entry, replay, done, summary)
            bar.show(count, summary)
    finally:
        close = getattr(iterator, "close", None)
        if callable(close):
            close()  # gives back what a streamed destination holds (SQS visibility)
    bar.finish()
    return summary


def _replay_one(entry: NoticeEntry, replay: Replay, done: DoneLog,
                summary: RedriveSummary) -> None:
    if entry.id in done:
        summary.already_done += 1
        if not summary.dry_run:
            _ack(entry, summary)  # replayed by an earlier run that stopped before the ack
        return
    payload = _payload(entry.notice)
    if payload is None:
        summary.no_payload += 1
        return
    if summary.dry_run:
        summary.replayed += 1
        return
    reason = replay(payload)
    if reason is None:
        done.mark(entry.id)  # before the ack: a crash in between must not replay it again
        summary.replayed += 1
        _ack(entry, summary)
    else:
        summary.failed += 1
        summary.failures.append((entry.id, reason))


def _ack(entry: NoticeEntry, summary: RedriveSummary) -> None:
    if entry.ack is None:
        return
    try:
        entry.ack()
    except EsmError as exc:  # done all the same: the id is in the progress file
        log.warning("redrive: notice %s replayed but not removed from the destination: %s",
                    entry.id, exc)
        summary.ack_failed += 1


def _payload(notice: dict[str, Any]) -> dict[str, Any] | None:
    payload = notice.get("payload")
    if isinstance(payload, str):  # AWS documents it as an escaped JSON string (ESM-SPEC §4.5)
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    return payload if isinstance(payload, dict) else None


# -- where replays go ------------------------------------------------------------------------


def target_replay(mapping: MappingConfig) -> tuple[Replay, Callable[[], None]]:
    """Invoke the mapping's target with each event; a function error, a non-empty
    `batchItemFailures` (when ReportBatchItemFailures is on) or an invoke error is a failure.
    Returns the replay function and a close function."""
    context = ConnectorContext(mapping=mapping.name, stop=threading.Event(), clock=SystemClock())
    target = build_connector(mapping.target, context)
    load = getattr(target, "load", None)
    if callable(load):
        load()

    def replay(event: dict[str, Any]) -> str | None:
        body = json.dumps(event).encode()
        try:
            result = target.invoke(Event(event, body, str(uuid.uuid4())),
                                   mapping.target_timeout_seconds)
        except EsmError as exc:
            return f"invoke error: {exc}"
        return _failure_of(result, mapping.report_batch_item_failures)

    return replay, target.close


def _failure_of(result: Returned | FunctionFailed, report_items: bool) -> str | None:
    if isinstance(result, FunctionFailed):
        return f"function error: {result.error_type}: {result.error_message}"[:300]
    payload = result.payload
    if report_items and isinstance(payload, dict) and payload.get("batchItemFailures"):
        return f"partial failure: {len(payload['batchItemFailures'])} record(s) failed"
    return None


def source_replay(mapping: MappingConfig) -> tuple[Replay, Callable[[], None]]:
    """Write each event's records back to the source through its connector's
    `produce(records)` hook (the record objects of the event, ESM-SPEC §2, or what its
    `event_records(event)` makes of the event); ConfigError when
    the source type has none. Returns the replay function and a close function."""
    produce_hook = getattr(mapping.source.cls, "produce", None)
    if not callable(produce_hook):
        raise ConfigError(f"source type {mapping.source.type!r} cannot take records back "
                          "(its connector has no produce hook); redrive --to target instead")
    context = ConnectorContext(mapping=mapping.name, stop=threading.Event(), clock=SystemClock())
    source = build_connector(mapping.source, context)
    # A source whose event groups records under keys the records do not repeat (RabbitMQ's
    # rmqMessagesByQueue) takes its events apart itself.
    split: Callable[[dict[str, Any]], list[dict[str, Any]]] = getattr(
        source, "event_records", event_records)

    def replay(event: dict[str, Any]) -> str | None:
        records = split(event)
        if not records:
            return "the notice's payload holds no records"
        try:
            source.produce(records)
        except EsmError as exc:
            return f"produce failed: {exc}"
        return None

    return replay, source.close


def event_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The record objects of an event: `Records` (SQS, Redis Streams, memory, Kinesis,
    DynamoDB), ActiveMQ's `messages` (ESM-SPEC §2.6) or Kafka's `records`, grouped by
    `"<topic>-<partition>"` (ESM-SPEC §2.4)."""
    records = event.get("Records", event.get("messages"))
    if isinstance(records, list):
        return [r for r in records if isinstance(r, dict)]
    grouped = event.get("records")
    if isinstance(grouped, dict):
        return [r for lane in grouped.values() if isinstance(lane, list)
                for r in lane if isinstance(r, dict)]
    return []
