# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
"""`esm run` with Kafka tumbling windows (beyond AWS) on a real broker, the window state
in a real Redis (`window_state: {type: redis}`), killed -9 mid-run and restarted. Windows
follow record timestamps (the producer stamps them here, 2 s apart in the past, so every
window ends as soon as its records are in). Every offset must end in exactly one final
state, none twice in a state, and at most one window (in flight at the kill) may be
finalised twice."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import wait_until
from tests.integration.handlers import read_journal
from tests.integration.kafka_e2e_support import (  # noqa: F401
    Case,
    one_partition,
    send_all,
    stop_cleanly,
)
from tests.servers.kafka_server import kafka_server  # noqa: F401
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration

RECORDS = 400
PER_WINDOW = 50


def produce(case: Case) -> None:
    """Offsets 0…399, 50 per 2 s window, stamped an hour ago."""
    start_ms = (int(time.time()) - 3600) // 2 * 2000
    send_all(case, ({"value": b'{"n": %d}' % n, "partition": 0,
                     "timestamp_ms": start_ms + (n // PER_WINDOW) * 2000 + n % PER_WINDOW}
                    for n in range(RECORDS)))


def finals(journal: Path) -> list[dict[str, Any]]:
    return [line for line in read_journal(journal) if line["kind"] == "final"]


def open_invokes(journal: Path) -> int:
    """Invokes of the window open after at least one final (0 before the first final)."""
    lines = read_journal(journal)
    last_final = max((i for i, line in enumerate(lines) if line["kind"] == "final"),
                     default=None)
    return 0 if last_final is None else len(lines) - last_final - 1


def folded(journal: Path) -> set[int]:
    return {offset for line in finals(journal) for offset in line["state"].get("offsets", [])}


def test_kill_9_mid_run_keeps_every_kafka_window_once(one_partition: Case,
                                                      redis_server: RedisServer) -> None:
    case = one_partition
    # Given 8 windows of 50 records and a daemon folding them, slowly, into window states
    produce(case)
    keys = {"batch_size": 10, "tumbling_window_in_seconds": 2,
            "window_state": {"type": "redis", "url": redis_server.url,
                             "key_prefix": f"{case.group}:"},
            "target": {"type": "python", "timeout_seconds": 10,
                       "handler": "tests.integration.window_handlers:kafka_sum"}}
    knobs = {"sleep_seconds": "0.03"}
    with case.daemon(knobs=knobs, **keys) as d:
        d.wait_ready()
        # When it is killed -9 with a window finalised and the next one three invokes in
        # (so some of its records are folded in and committed: only the saved window
        # state has them)
        wait_until(lambda: open_invokes(case.journal) >= 3, 60, d.log_tail)
        d.kill()
    killed_after = len(finals(case.journal))
    # And started again
    with case.daemon(knobs=knobs, **keys) as d:
        d.wait_ready()
        wait_until(lambda: folded(case.journal) == set(range(RECORDS)), 90,
                   lambda: f"{RECORDS - len(folded(case.journal))} missing\n{d.log_tail()}")
        case.wait_committed(d)
        stop_cleanly(d)
    # Then every offset is in a final state, no state holds one twice, and at most the
    # window in flight at the kill was finalised twice
    done = finals(case.journal)
    assert 0 < killed_after < RECORDS // PER_WINDOW < len(done) + 1
    for line in done:
        assert len(line["state"]["offsets"]) == len(set(line["state"]["offsets"]))
    twice = [s for s, n in Counter(line["start"] for line in done).items() if n > 1]
    assert len(twice) <= 1, twice
    assert len({line["start"] for line in done}) == RECORDS // PER_WINDOW
