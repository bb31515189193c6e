"""Intake: what happens to a poll's records before they wait for dispatch. The filter runs
over them (DESIGN §5), stream records are tracked for in-order commits, matches go to the
lane buffer, and filtered-out records are acked (checklist 32).

Performance: this runs for every record read, so it works on the whole poll at once: one
pass of the matcher over the views, lane runs tracked and buffered with list operations
(`AckBook.track`, `LaneBuffer.add_all`) instead of several Python calls per record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import compress

from esm.filtering import MATCH_ALL, Matcher
from esm.ops.metrics import MappingMetrics
from esm.pipeline.acks import AckBook
from esm.pipeline.lane_buffer import LaneBuffer
from esm.records import Record

log = logging.getLogger("esm.pipeline.reader")


class Intake:
    """Filters, tracks and buffers polled records; reader thread only."""

    def __init__(self, *, mapping_name: str, matcher: Matcher, buffer: LaneBuffer,
                 acks: AckBook, metrics: MappingMetrics, stream: bool) -> None:
        self.mapping_name = mapping_name
        self.matcher = matcher
        self.buffer = buffer
        self.acks = acks
        self.metrics = metrics
        self.stream = stream

    def ingest(self, records: Sequence[Record], now: float) -> None:
        """Filter a poll's records, track them (stream family) and buffer the matches."""
        self.metrics.count("polled", len(records))
        if self.matcher is MATCH_ALL:
            matched: Sequence[Record] = records
            filtered: list[Record] = []
        else:
            flags = self._match_all(records)
            matched = list(compress(records, flags))
            filtered = [r for r, ok in zip(records, flags, strict=True) if not ok]
        if self.stream:
            self.acks.track(records, filtered)
        self.buffer.add_all(matched, now)
        if filtered:
            self.metrics.count("filtered_out", len(filtered))
            self.acks.filtered(filtered)

    def _match_all(self, records: Sequence[Record]) -> list[bool]:
        views = [view if type(view := r.filter_view if r.filter_view is not None
                              else r.payload) is dict else dict(view)
                 for r in records]  # a source's lazy Mapping view: the matcher reads dicts
        try:
            return list(map(self.matcher.matches, views))
        except Exception:  # noqa: BLE001 - find the record it raised on, one by one
            return [self._safe_match(r, view) for r, view in zip(records, views, strict=True)]

    def _safe_match(self, record: Record, view: dict[str, object]) -> bool:
        try:
            return bool(self.matcher.matches(view))
        except Exception:  # a matcher bug must not drop records: deliver them
            log.exception("mapping %s: filter raised on record %s; delivering it",
                          self.mapping_name, record.item_id)
            return True
