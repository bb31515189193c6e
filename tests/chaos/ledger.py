"""The ledger: what was produced, what the handler saw, what was dead-lettered, and the one
check every damage scenario passes.

- produced: `Produced` records (id, lane, seq, poison), as the scenario wrote them.
- delivered: the damage handler's journal (`tests.chaos.damage_handler`): a record is
  delivered when the handler returned it as a success at least once.
- dead-lettered: notices read back from the on-failure destination; the records are taken
  from each notice's `payload` (the failed event), so a notice without its payload does
  not account for anything.

The check (`Ledger.result`): every produced record delivered at least once or
dead-lettered with its payload, none lost; on stream sources (and SQS FIFO groups) the
first deliveries of each lane come in produced order; duplicates are counted against the
in-flight bound the scenario states (records a killed daemon may have finished and not yet
acked, times kills). A duplicate is a successful delivery of a record that was already
finished: on queue sources any success after the first; on stream sources a success after
one in an invocation that succeeded whole (a partial failure or a bisection hands the
batch's successful records to the target again by design, ESM-SPEC §4.3). Dead letters of healthy
records that never reached the target (`approximateInvokeCount` 0) are reported: a
crashing daemon must not turn healthy records into dead letters.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.events import event_items
from tests.integration.handlers import read_journal

Notices = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class Produced:
    id: str
    lane: str
    seq: int
    poison: bool = False

    def doc(self) -> dict[str, Any]:
        return {"id": self.id, "lane": self.lane, "seq": self.seq, "poison": self.poison}


def file_notices(path: Path) -> Notices:
    """Notices of a `file` destination (a torn last line is skipped)."""
    return lambda: read_journal(path)


@dataclass
class Result:
    scenario: str
    seed: int
    produced: int
    delivered: int
    dead_lettered: int
    lost: list[str]
    duplicates: int
    duplicate_bound: int
    kills: int
    order_breaks: list[str] = field(default_factory=list)
    uninvoked_healthy: list[str] = field(default_factory=list)
    # healthy records dead-lettered after fewer failed attempts at the handler than the
    # source's limit (kits that set `dead_letter_after`)
    early_healthy: list[str] = field(default_factory=list)
    notices_without_payload: int = 0
    # replicas that did not exit within 30 s of SIGTERM (and were killed instead)
    stuck_stops: int = 0
    diagnosis: str = ""

    def problems(self) -> list[str]:
        """What the check refuses: losses, order breaks, notices that lost the payload."""
        out = []
        if self.lost:
            out.append(f"{len(self.lost)} lost: {self.lost[:20]} {self.diagnosis}")
        if self.order_breaks:
            out.append(f"first deliveries out of lane order: {self.order_breaks[:10]}")
        if self.notices_without_payload:
            out.append(f"{self.notices_without_payload} notice(s) without payload")
        if self.stuck_stops:
            out.append(f"{self.stuck_stops} replica(s) did not exit within 30 s of SIGTERM "
                       "(their stacks are in the daemon log)")
        return out

    def anomalies(self) -> list[str]:
        """Reported, not refused: duplicates over the bound, healthy records dead-lettered
        without one invocation."""
        out = []
        if self.duplicates > self.duplicate_bound:
            out.append(f"{self.duplicates} duplicates over the bound {self.duplicate_bound}")
        if self.uninvoked_healthy:
            out.append(f"{len(self.uninvoked_healthy)} healthy record(s) dead-lettered "
                       f"without an invocation: {self.uninvoked_healthy[:10]}")
        if self.early_healthy:
            out.append(f"{len(self.early_healthy)} healthy record(s) dead-lettered before "
                       f"failing the limit's number of times: {self.early_healthy[:10]}")
        return out

    def row(self) -> str:
        return (f"| {self.scenario} | {self.seed} | {self.produced} | {self.delivered} | "
                f"{self.dead_lettered} | {len(self.lost)} | {self.duplicates} "
                f"(≤ {self.duplicate_bound}) | {self.kills} |")


TABLE_HEADER = ("| scenario | seed | produced | delivered | dead-lettered | lost | "
                "duplicates (bound) | kills |\n|---|---|---|---|---|---|---|---|")


class Ledger:
    """One scenario's books (see the module docstring)."""

    def __init__(self, scenario: str, seed: int, journal: Path, notices: Notices, *,
                 ordered: bool, stream: bool, in_flight_bound: int,
                 dead_letter_after: int | None = None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.journal = journal
        self.notices = notices
        self.ordered = ordered
        self.stream = stream
        self.in_flight_bound = in_flight_bound
        self.dead_letter_after = dead_letter_after
        self.produced: dict[str, Produced] = {}
        self.kills = 0
        self.stuck_stops = 0

    def add(self, records: Iterable[Produced]) -> None:
        for record in records:
            self.produced[record.id] = record

    def lines(self) -> list[dict[str, Any]]:
        return read_journal(self.journal)

    def delivered(self) -> Counter[str]:
        """Successful deliveries per record id."""
        return Counter(line["id"] for line in self.lines() if line["kind"] == "ok")

    def dead_lettered(self) -> dict[str, list[dict[str, Any]]]:
        """Record id → the notices whose payload holds it."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for notice in self.notices():
            for item in event_items(notice.get("payload") or {}):
                out[item.id].append(notice)
        return out

    def missing(self) -> list[str]:
        """Produced records neither delivered nor dead-lettered (yet)."""
        done = set(self.delivered()) | set(self.dead_lettered())
        return sorted((i for i in self.produced if i not in done), key=self._seq)

    def accounted(self) -> bool:
        return not self.missing()

    def result(self) -> Result:
        delivered, dead = self.delivered(), self.dead_lettered()
        notices = self.notices()
        return Result(
            scenario=self.scenario, seed=self.seed, produced=len(self.produced),
            delivered=len(set(delivered) & set(self.produced)),
            dead_lettered=len(set(dead) & set(self.produced)), lost=self.missing(),
            duplicates=self._duplicates(),
            duplicate_bound=self.in_flight_bound * max(1, self.kills), kills=self.kills,
            stuck_stops=self.stuck_stops,
            order_breaks=self._order_breaks() if self.ordered else [],
            uninvoked_healthy=self._uninvoked_healthy(dead),
            early_healthy=self._early_healthy(dead),
            notices_without_payload=sum(1 for n in notices if not n.get("payload")))

    def _duplicates(self) -> int:
        """Successful deliveries of records already finished (see the module docstring)."""
        finished: set[str] = set()
        count = 0
        for line in self.lines():
            if line["kind"] != "ok":
                continue
            if line["id"] in finished:
                count += 1
            elif line.get("clean") or not self.stream:
                finished.add(line["id"])
        return count

    def _order_breaks(self) -> list[str]:
        """Per lane, first deliveries whose seq is lower than an earlier first delivery's."""
        seen: set[str] = set()
        last: dict[str, int] = {}
        breaks = []
        for line in self.lines():
            record = self.produced.get(line["id"])
            if record is None or record.id in seen:
                continue
            seen.add(record.id)
            if record.seq < last.get(record.lane, -1):
                breaks.append(f"{record.lane}: {record.id} after seq {last[record.lane]}")
            last[record.lane] = max(record.seq, last.get(record.lane, -1))
        return breaks

    def _uninvoked_healthy(self, dead: dict[str, list[dict[str, Any]]]) -> list[str]:
        out = []
        for record_id, notices in dead.items():
            record = self.produced.get(record_id)
            if record is None or record.poison:
                continue
            if any(_invoke_count(n) == 0 for n in notices):
                out.append(record_id)
        return sorted(out, key=self._seq)

    def _early_healthy(self, dead: dict[str, list[dict[str, Any]]]) -> list[str]:
        """Healthy dead letters the handler failed fewer than `dead_letter_after` times (in
        every process together: a restart forgets the source's count, never the journal)."""
        if self.dead_letter_after is None:
            return []
        failed = Counter(line["id"] for line in self.lines() if line["kind"] == "fail")
        return sorted((i for i in dead if i in self.produced and not self.produced[i].poison
                       and failed[i] < self.dead_letter_after), key=self._seq)

    def _seq(self, record_id: str) -> int:
        return self.produced[record_id].seq


def _invoke_count(notice: dict[str, Any]) -> int:
    return int((notice.get("requestContext") or {}).get("approximateInvokeCount", -1))


def describe(ledger: Ledger) -> str:
    """For failure messages: what is still missing."""
    missing = ledger.missing()
    return f"{len(missing)} record(s) neither delivered nor dead-lettered: {missing[:20]}"
