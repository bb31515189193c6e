"""Tumbling windows (`tumbling_window_in_seconds`, ESM-SPEC §2.5): which window a record
belongs to, each lane's open window and its state, and the documents that carry a window
across a restart or a lease handover.

Rules kept here:
- windows come from record arrival times: [floor(t / W) * W, + W), aligned like AWS's
  (Kafka: record timestamps; a record older than the open window, possible with producer
  timestamps, is folded into the open window rather than reopening a finished one);
- a lane has at most one open window; its state is what the function last returned;
- a window ends with one final invoke (`isFinalInvokeForWindow`, no records) once the clock
  passes its end, or as soon as a record of a later window is due on the lane;
- state over 1 MB ends the window early (`isWindowTerminatedEarly`); the rest of its time
  range starts again with empty state;
- a window's document is saved before the checkpoint of the records it covers moves
  (`lastPosition`: the last record folded into the state). After a crash between the two,
  records at or before `lastPosition` are delivered again but not folded in twice: the
  invoker skips them. After a final invoke the document names the closed window, so the
  window is finalised again only if the crash came before that document was saved.

The book is shared by the reader (restore, due windows, saving) and lane workers (reading
and updating their lane's window, one batch per lane at a time); a lock guards it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_STATE_BYTES = 1024 * 1024  # ESM-SPEC §2.5: state over 1 MB ends the window early


def window_bounds(timestamp: float, seconds: int) -> tuple[float, float]:
    """The tumbling window [start, end) holding an arrival time (epoch seconds)."""
    start = math.floor(timestamp / seconds) * seconds
    return float(start), float(start + seconds)


def iso_second(epoch_seconds: float) -> str:
    """`2020-12-09T07:04:00Z`, the event's window bound format (ESM-SPEC §2.5)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class LaneWindow:
    """A lane's open window. `last_position` is the last record folded into `state`."""

    start: float
    end: float
    state: Any = field(default_factory=dict)
    last_position: str | None = None
    terminated_early: bool = False  # state grew over 1 MB: the final invoke is owed now
    lane_ended: bool = False  # resharding closed the lane: the final invoke is owed now
    final_failures: int = 0

    def document(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "state": self.state,
                "lastPosition": self.last_position, "terminatedEarly": self.terminated_early}


def window_from(document: Mapping[str, Any]) -> LaneWindow | None:
    """The open window a saved document describes (None for a closed or unreadable one)."""
    if document.get("closed") or "start" not in document:
        return None
    return LaneWindow(float(document["start"]), float(document["end"]),
                      document.get("state", {}), document.get("lastPosition"),
                      bool(document.get("terminatedEarly", False)))


def closed_document(window: LaneWindow) -> dict[str, Any]:
    return {"closed": True, "start": window.start, "end": window.end,
            "lastPosition": window.last_position}


class WindowBook:
    """Open windows per lane, documents waiting to be saved, and what is folded in."""

    def __init__(self, seconds: int, store: object = None) -> None:
        self.seconds = seconds
        # A `window_state` store (KeepsWindows) for sources that keep no windows (Kafka);
        # otherwise the source itself keeps them with its checkpoints.
        self.store = store
        self._lock = threading.Lock()
        self._open: dict[str, LaneWindow] = {}
        self._folded_up_to: dict[str, str] = {}  # lane → last position already in a state
        self._unsaved: dict[str, dict[str, Any]] = {}
        self._final_queued: set[str] = set()

    def restore(self, lane: str, document: Mapping[str, Any] | None) -> None:
        """A lane assigned (start, restart, lease taken): its saved window, if any."""
        with self._lock:
            self._final_queued.discard(lane)
            self._open.pop(lane, None)
            self._folded_up_to.pop(lane, None)
            if document is None:
                return
            if document.get("lastPosition") is not None:
                self._folded_up_to[lane] = str(document["lastPosition"])
            window = window_from(document)
            if window is not None:
                self._open[lane] = window

    def restore_from(self, source: object, lanes: Iterable[str]) -> None:
        """`restore` each lane from the source's saved windows (esm.interfaces.KeepsWindows;
        a source without them starts every lane afresh)."""
        load = getattr(self.store or source, "load_window", None)
        for lane in lanes:
            self.restore(lane, load(lane) if load is not None else None)

    def save_unsaved(self, source: object) -> None:
        """Save the documents lane workers noted (KeepsWindows.save_window); the reader
        calls this before applying a settlement's acks, so a window is always saved before
        the checkpoint of the records it covers."""
        save = getattr(self.store or source, "save_window", None)
        for lane, document in self.take_unsaved().items():
            if save is not None:
                save(lane, document)

    def window(self, lane: str) -> LaneWindow | None:
        with self._lock:
            return self._open.get(lane)

    def folded_up_to(self, lane: str) -> str | None:
        with self._lock:
            return self._folded_up_to.get(lane)

    def update(self, lane: str, window: LaneWindow) -> None:
        """The window after an invoke that folded records in; saved before their checkpoint."""
        with self._lock:
            self._open[lane] = window
            if window.last_position is not None:
                self._folded_up_to[lane] = window.last_position
            self._unsaved[lane] = window.document()

    def close(self, lane: str, window: LaneWindow) -> None:
        """The window's final invoke succeeded."""
        with self._lock:
            if self._open.get(lane) is window:
                del self._open[lane]
            self._final_queued.discard(lane)
            self._unsaved[lane] = closed_document(window)

    def take_unsaved(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            unsaved, self._unsaved = self._unsaved, {}
            return unsaved

    def end_lane(self, lane: str) -> bool:
        """Resharding closes the lane's window: True if one is open (its final is owed)."""
        with self._lock:
            window = self._open.get(lane)
            if window is None:
                return False
            window.lane_ended = True
            return True

    def due(self, now: float) -> list[str]:
        """Lanes whose window needs its final invoke (ended, or terminated early) and has
        none queued yet; each is reported once until `close` or `restore`."""
        with self._lock:
            lanes = [lane for lane, w in self._open.items() if lane not in self._final_queued
                     and (w.terminated_early or w.lane_ended or w.end <= now)]
            self._final_queued.update(lanes)
            return lanes

    def final_done(self, lane: str) -> None:
        """The queued final ran and gave up or found nothing to do: it may be queued again."""
        with self._lock:
            self._final_queued.discard(lane)

    def forget(self, lanes: list[str]) -> None:
        """Revoked lanes: their next owner resumes from the saved documents."""
        with self._lock:
            for lane in lanes:
                self._open.pop(lane, None)
                self._folded_up_to.pop(lane, None)
                self._unsaved.pop(lane, None)
                self._final_queued.discard(lane)
