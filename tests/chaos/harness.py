"""Running one damage scenario: daemons as subprocesses, records fed while damage is done,
then the ledger's check.

- Seeds: `ESM_CHAOS_SEED` (else one is drawn and printed); each scenario derives its own
  from it and its name, so one scenario replays alone with the seed its row shows.
- `ESM_CHAOS=long` selects the long run (`long_run()`): more kills and churn runs.
- `ChaosRun` writes the config, starts the replicas, feeds records from a thread while
  `damage` actions (kill -9, SIGTERM, broker restart, destination outage ...) run at random
  moments, waits until every record is accounted for, stops the replicas with SIGTERM
  and returns the ledger's `Result`, which is also kept for the session's table.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.kits import Kit
from tests.chaos.ledger import Ledger, Notices, Result, describe, file_notices
from tests.integration.e2e_support import DaemonProcess, daemon_env, write_config

HANDLER = "tests.chaos.damage_handler:handler"
RESULTS: list[Result] = []  # rows of this session's table (printed by the conftest)
_drawn_seed: list[int] = []


def base_seed() -> int:
    """ESM_CHAOS_SEED, or one drawn once per session."""
    value = os.environ.get("ESM_CHAOS_SEED")
    if value:
        return int(value)
    if not _drawn_seed:
        _drawn_seed.append(random.SystemRandom().randrange(1, 2**31))
    return _drawn_seed[0]


def scenario_seed(scenario: str) -> int:
    return (base_seed() + zlib.crc32(scenario.encode())) % 2**31


def long_run() -> bool:
    return os.environ.get("ESM_CHAOS") == "long"


def kills(short: int, long: int = 20) -> int:
    return long if long_run() else short


Action = Callable[["ChaosRun"], None]


@dataclass
class Damage:
    """What to do, in order, each after a random gap in `gap_seconds`."""

    actions: list[Action]
    gap_seconds: tuple[float, float] = (1, 2.5)


@dataclass
class ChaosRun:
    tmp_path: Path
    scenario: str
    kit: Kit
    replicas: int = 1
    initial: int = 1000
    feed_per_second: int = 300
    poison_per_mille: int = 3
    knobs: dict[str, str] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    destination: dict[str, Any] | None = None
    notices: Notices | None = None
    mapping_keys: dict[str, Any] = field(default_factory=dict)
    settle_seconds: float = 240
    # give up settling when nothing more was accounted for in this long (a stalled lane)
    stalled_seconds: float = 30

    def __post_init__(self) -> None:
        self.seed = scenario_seed(self.scenario)
        self.rng = random.Random(self.seed)
        print(f"\nchaos scenario {self.scenario}: ESM_CHAOS_SEED={base_seed()} "
              f"(scenario seed {self.seed})")
        dead_letters = self.tmp_path / "dead-letters.jsonl"
        self.destination = self.destination or {"type": "file", "path": str(dead_letters)}
        self.ledger = Ledger(self.scenario, self.seed, self.tmp_path / "journal.jsonl",
                             self.notices or file_notices(dead_letters),
                             ordered=self.kit.ordered, stream=self.kit.stream,
                             in_flight_bound=self.kit.in_flight_bound,
                             dead_letter_after=self.kit.dead_letter_after)
        self.log = self.tmp_path / "daemon.log"
        env = daemon_env(Path(os.devnull))
        env["ESM_CHAOS_JOURNAL"] = str(self.ledger.journal)
        env.update({f"ESM_CHAOS_{k}": v for k, v in {**self.kit.knobs, **self.knobs}.items()})
        # one config per replica: each has its own admin port
        self.daemons = [DaemonProcess(write_config(self.tmp_path, [self._mapping()],
                                                   shutdown_timeout_seconds=10,
                                                   name=f"esm-{n}.yaml"), env, self.log)
                        for n in range(self.replicas)]
        self._next_seq = 0
        self._stop_feed = threading.Event()
        self.produced_at: dict[str, float] = {}  # record id → epoch seconds

    def _mapping(self) -> dict[str, Any]:
        mapping: dict[str, Any] = {
            "name": "chaos", "source": self.kit.source, **self.kit.mapping_keys,
            "target": self.target or {"type": "python", "handler": HANDLER,
                                      "timeout_seconds": self.kit.target_timeout_seconds},
            "destination_config": {"on_failure": self.destination}}
        mapping.update(self.mapping_keys)
        return mapping

    # -- the run --------------------------------------------------------------------------

    def run(self, damage: Damage) -> Result:
        marks = [time.monotonic()]
        self.produce(self.initial)
        feeder = threading.Thread(target=self._feed, name="chaos-feed", daemon=True)
        try:
            for daemon in self.daemons:
                daemon.start()
            self.daemons[0].wait_ready()
            marks.append(time.monotonic())
            feeder.start()
            for action in damage.actions:
                time.sleep(self.rng.uniform(*damage.gap_seconds))
                action(self)
            self._stop_feed.set()
            feeder.join(30)
            marks.append(time.monotonic())
            self._settle()
            marks.append(time.monotonic())
        finally:
            self._stop_feed.set()
            for daemon in self.daemons:
                daemon.kill()
        result = self.ledger.result()
        if result.lost:
            result.diagnosis = self.kit.diagnose(result.lost)
        RESULTS.append(result)
        print(result.row())
        phases = zip(("produce+start", "damage", "settle+stop"), marks, marks[1:], strict=False)
        print("phases: " + ", ".join(f"{name} {end - start:.1f}s"
                                     for name, start, end in phases))
        return result

    def produce(self, count: int) -> None:
        records = self.kit.records(self._next_seq, count, self.seed, self.poison_per_mille)
        self._next_seq += count
        self.kit.produce(records)
        now = time.time()
        self.produced_at.update((r.id, now) for r in records)
        self.ledger.add(records)

    def _feed(self) -> None:
        """Records at `feed_per_second` until the damage is done. A chunk the broker
        refused (it is being restarted) is not in the ledger; the next chunk has new ids."""
        chunk = max(1, self.feed_per_second // 5)
        while not self._stop_feed.wait(0.2):
            try:
                self.produce(chunk)
            except Exception as exc:  # the broker is down: feed again when it is back
                print(f"chaos feed: {len(self.ledger.produced)} produced; a chunk failed: "
                      f"{type(exc).__name__}: {exc}")

    def _settle(self) -> None:
        """Every replica up, then until each record is accounted for, then SIGTERM all."""
        for daemon in self.daemons:
            if daemon.proc is None or daemon.proc.poll() is not None:
                daemon.start()
        if not self._wait_accounted():
            print(f"{describe(self.ledger)}\n{self.daemons[0].log_tail()}")
            return  # the result names what was lost
        for daemon in self.daemons:
            daemon.terminate()
        for daemon in self.daemons:
            daemon.wait_exit(30)

    def _wait_accounted(self) -> bool:
        """Until every record is accounted for (True), or nothing more was for
        `stalled_seconds`, or `settle_seconds` passed (False)."""
        deadline = time.monotonic() + self.settle_seconds
        missing = len(self.ledger.missing())
        progress_at = time.monotonic()
        while missing:
            now = time.monotonic()
            if now > deadline or now - progress_at > self.stalled_seconds:
                return False
            time.sleep(0.5)
            still = len(self.ledger.missing())
            if still < missing:
                missing, progress_at = still, now
        return True

    # -- damage actions ---------------------------------------------------------------------

    def victim(self) -> DaemonProcess:
        return self.daemons[self.rng.randrange(len(self.daemons))]


def kill_9(run: ChaosRun) -> None:
    """kill -9 one replica and start it again at once."""
    daemon = run.victim()
    daemon.kill()
    run.ledger.kills += 1
    daemon.start()


def sigterm(run: ChaosRun) -> None:
    """SIGTERM one replica (it drains) and start it again as soon as it exited."""
    daemon = run.victim()
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.wait_exit(30)
        except AssertionError:  # a problem of the run (Result.problems), not of this step
            run.ledger.stuck_stops += 1
            daemon.kill()
    run.ledger.kills += 1
    daemon.start()


def churn(run: ChaosRun) -> None:
    """kill -9 or SIGTERM, chosen by the seed (a rolling deploy or a node drain)."""
    (kill_9 if run.rng.random() < 0.5 else sigterm)(run)


def assert_clean(result: Result) -> None:
    problems = result.problems()
    assert not problems, (f"{result.scenario} (seed {result.seed}): " + "; ".join(problems)
                          + f"\n{result.row()}")


def run_checked(run: ChaosRun, damage: Damage) -> Result:
    """Run, close the kit, and refuse what `assert_clean` refuses and healthy records
    dead-lettered early: without an invocation, or (kits with `dead_letter_after`) before
    failing at the handler that often (for sources that promise neither)."""
    try:
        result = run.run(damage)
    finally:
        run.kit.close()
    assert_clean(result)
    assert not (result.uninvoked_healthy or result.early_healthy), result.anomalies()
    return result
