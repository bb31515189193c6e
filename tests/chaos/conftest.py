"""The damage suite's servers (one of each for the session) and its table, printed at the
end of the run (`tests.chaos.harness.RESULTS`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.harness import RESULTS, base_seed, long_run
from tests.chaos.ledger import TABLE_HEADER
from tests.servers.activemq_server import activemq_server  # noqa: F401
from tests.servers.kafka_server import kafka_server  # noqa: F401
from tests.servers.moto_server import moto_server  # noqa: F401
from tests.servers.rabbitmq_server import rabbitmq_server  # noqa: F401
from tests.servers.redis_server import redis_server  # noqa: F401
from tests.servers.sqs_server import sqs_server  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"damage suite ({'long' if long_run() else 'short'} run), "
          f"ESM_CHAOS_SEED={base_seed()}")
    write(TABLE_HEADER)
    for result in RESULTS:
        write(result.row())
    for result in RESULTS:
        for note in result.problems() + result.anomalies():
            write(f"{result.scenario} (seed {result.seed}): {note}")
