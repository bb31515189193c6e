"""`esm redrive`: replay the notices of a mapping's on-failure destination.

Each notice's `payload` (the event of the failed batch, DESIGN §7) is sent again, either to
the mapping's target (rebuilt from the configuration, invoked like the daemon does) or back
to the source when its connector offers a `produce(event)` hook. Notices without a payload
(`include_payload: false`) cannot be replayed and are counted as such.

Idempotent when interrupted: every replayed notice's id goes to a progress file (esm.
redrive_state) before the next one starts, and a re-run skips those ids. A notice whose
replay fails again is not marked, so the next run retries it. `--dry-run` reads and counts
without invoking anything or writing the progress file.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from esm.assembly import build_connector
from esm.clock import SystemClock
from esm.config_types import MappingConfig
from esm.errors import ConfigError, EsmError
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned
from esm.redrive_sources import NoticeEntry
from esm.redrive_state import DoneLog

Replay = Callable[[dict[str, Any]], str | None]  # event → None on success, else the reason


@dataclass
class RedriveSummary:
    total: int = 0
    replayed: int = 0
    failed: int = 0
    already_done: int = 0
    no_payload: int = 0
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
        out += [f"  failed: {nid}: {reason}" for nid, reason in self.failures[:20]]
        return out


class ProgressBar:
    """`[#####.....] 12/40` redrawn on one terminal line; silent when disabled."""

    def __init__(self, total: int, stream: TextIO, enabled: bool, width: int = 30) -> None:
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width

    def show(self, done: int, summary: RedriveSummary) -> None:
        if not self.enabled:
            return
        filled = self.width * done // self.total if self.total else self.width
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"
                          f" replayed={summary.replayed} failed={summary.failed}")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def redrive(entries: Iterable[NoticeEntry], replay: Replay, done: DoneLog, *,
            dry_run: bool = False, progress_stream: TextIO | None = None,
            stop: threading.Event | None = None) -> RedriveSummary:
    """Replay every entry not in `done`; see the module docstring."""
    items = list(entries)  # the total is needed for the progress bar
    summary = RedriveSummary(total=len(items), dry_run=dry_run)
    bar = ProgressBar(len(items), progress_stream or sys.stderr, progress_stream is not None)
    for count, entry in enumerate(items, start=1):
        if stop is not None and stop.is_set():
            summary.interrupted = True
            break
        _replay_one(entry, replay, done, summary)
        bar.show(count, summary)
    return summary


def _replay_one(entry: NoticeEntry, replay: Replay, done: DoneLog,
                summary: RedriveSummary) -> None:
    if entry.id in done:
        summary.already_done += 1
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
        done.mark(entry.id)
        summary.replayed += 1
    else:
        summary.failed += 1
        summary.failures.append((entry.id, reason))


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
    """Hand each event back to the source connector's `produce(event)` hook; ConfigError
    when the source type has none."""
    produce_hook = getattr(mapping.source.cls, "produce", None)
    if not callable(produce_hook):
        raise ConfigError(f"source type {mapping.source.type!r} cannot take records back "
                          "(its connector has no produce hook); redrive --to target instead")
    context = ConnectorContext(mapping=mapping.name, stop=threading.Event(), clock=SystemClock())
    source = build_connector(mapping.source, context)

    def replay(event: dict[str, Any]) -> str | None:
        try:
            source.produce(event)
        except EsmError as exc:
            return f"produce failed: {exc}"
        return None

    return replay, source.close
