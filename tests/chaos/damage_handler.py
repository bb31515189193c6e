"""The Lambda-style handler the damage suite runs inside the daemon (`type: python`, or
behind `target_server` for `type: http`). It fails on purpose, deterministically, and
journals what it returned for every record.

Knobs (environment variables, read at call time; per-mille chances are decided by a hash
of the record id and the attempt, so a seed replays the same failures):

  ESM_CHAOS_JOURNAL          journal path (JSON lines); required
  ESM_CHAOS_SLEEP_SECONDS    time each invocation takes (default 0)
  ESM_CHAOS_POISON_MODE      "raise": a batch holding a poison record raises (a function
                             error: stream sources bisect it); "report" (default): poison
                             records are named in batchItemFailures
  ESM_CHAOS_PARTIAL_PER_MILLE   chance per record and attempt of being named in
                             batchItemFailures, on attempts 1 and 2 only
  ESM_CHAOS_ERROR_PER_MILLE  chance per batch and attempt of raising (function error)
  ESM_CHAOS_HANG_PER_MILLE   chance per batch and attempt of sleeping past the timeout
  ESM_CHAOS_HANG_SECONDS     how long a hang lasts (default 30)
  ESM_CHAOS_MALFORMED_PER_MILLE  chance per batch and attempt of a malformed response
  ESM_CHAOS_STOP_AT_FIRST_FAILURE  "1": FIFO rule, every record after a failed one fails

The attempt is the source's delivery count when the event has one (SQS, Redis), else this
process's count of invocations holding the record. Poison records are produced with
`"poison": true`. Journal lines, one write per invocation (a kill -9 tears at most the
last): {"kind": "ok" | "fail", "id", "lane", "seq", "attempt", "why", "clean", "pid", "t"};
`clean` is true when the whole invocation succeeded (no record failed).
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections import Counter
from typing import Any

from tests.chaos.events import Item, event_items

_attempts: Counter[str] = Counter()
_lock = threading.Lock()


class DamageError(Exception):
    """Raised on purpose: a function error."""


def handler(event: dict[str, Any], context: Any) -> Any:
    items = event_items(event)
    attempts = _count_attempts(items)
    time.sleep(_float("SLEEP_SECONDS", 0))
    batch_key = f"{items[0].id}:{attempts[0]}" if items else ""
    if _chance("HANG_PER_MILLE", "hang:" + batch_key):
        _journal(items, attempts, {}, "hang")
        time.sleep(_float("HANG_SECONDS", 30))
        return {"batchItemFailures": []}  # too late: the target timed out long ago
    if _chance("ERROR_PER_MILLE", "error:" + batch_key):
        _journal(items, attempts, {}, "error")
        raise DamageError(f"batch of {len(items)} failed on purpose")
    if os.environ.get("ESM_CHAOS_POISON_MODE") == "raise" and any(_poison(i) for i in items):
        _journal(items, attempts, {}, "poison")
        raise DamageError("poison record in the batch")
    if _chance("MALFORMED_PER_MILLE", "malformed:" + batch_key):
        _journal(items, attempts, {}, "malformed")
        return {"batchItemFailures": [{"itemIdentifier": None}], "oops": True}
    failed = _failed(items, attempts)
    _journal(items, attempts, failed, "partial")
    return {"batchItemFailures": [{"itemIdentifier": items[i].identifier} for i in failed]}


def _failed(items: list[Item], attempts: list[int]) -> dict[int, bool]:
    stop_at_first = os.environ.get("ESM_CHAOS_STOP_AT_FIRST_FAILURE") == "1"
    failed: dict[int, bool] = {}
    for n, (item, attempt) in enumerate(zip(items, attempts, strict=True)):
        if (failed and stop_at_first) or _poison(item) or (
                attempt <= 2 and _chance("PARTIAL_PER_MILLE", f"partial:{item.id}:{attempt}")):
            failed[n] = True
    return failed


def _count_attempts(items: list[Item]) -> list[int]:
    with _lock:
        out = []
        for item in items:
            _attempts[item.id] += 1
            out.append(item.delivery if item.delivery is not None else _attempts[item.id])
        return out


def _poison(item: Item) -> bool:
    return item.doc.get("poison") is True


def _chance(knob: str, key: str) -> bool:
    per_mille = int(os.environ.get(f"ESM_CHAOS_{knob}", "0"))
    return per_mille > 0 and zlib.crc32(key.encode()) % 1000 < per_mille


def _float(knob: str, default: float) -> float:
    return float(os.environ.get(f"ESM_CHAOS_{knob}", default))


def _journal(items: list[Item], attempts: list[int], failed: dict[int, bool],
             why: str) -> None:
    """One line per record: ok unless failed, or the whole batch failed (`why` not partial)."""
    pid, now = os.getpid(), time.time()
    clean = why == "partial" and not failed
    lines = [{"kind": "fail" if (why != "partial" or n in failed) else "ok", "id": item.id,
              "lane": item.doc.get("lane"), "seq": item.doc.get("seq"), "attempt": attempt,
              "why": why, "clean": clean, "pid": pid, "t": now}
             for n, (item, attempt) in enumerate(zip(items, attempts, strict=True))]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fd = os.open(os.environ["ESM_CHAOS_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one O_APPEND write: concurrent invocations never interleave
    finally:
        os.close(fd)
