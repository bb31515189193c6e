"""Every unit test is checked for threads it left running (tests/unit/threads_left.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.unit.threads_left import close_registered, threads_still_running


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    close_registered()
    left = threads_still_running(before)
    if left:
        pytest.fail(f"the test left {len(left)} thread(s) running: {', '.join(left)}; "
                    "stop what it starts (or register it with close_after_test)",
                    pytrace=False)
