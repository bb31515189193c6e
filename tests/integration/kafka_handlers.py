"""The Lambda-style handler the Kafka end-to-end tests run inside the daemon (`python`
target): it journals every record it is given and fails the batches the test asks for.

The daemon is a subprocess the tests kill and restart, so the handler reports through an
append-only journal (JSON lines, one `write` per invocation, O_APPEND), read back with
`tests.integration.handlers.read_journal`. Knobs, read at call time:

  ESM_E2E_JOURNAL             journal path; required
  ESM_E2E_SLEEP_SECONDS       time each invocation takes (default 0)
  ESM_E2E_FAIL_PER_MILLE      chance per record (a hash of topic-partition:offset decides,
                              so it is deterministic) that a batch holding it fails
  ESM_E2E_FAIL_OFFSETS        comma-separated offsets whose records (on every partition) fail
                              their batch, for tests that must see failures in every run
  ESM_E2E_FAIL_ATTEMPTS       such a record fails its batch only on its first N attempts in
                              this process (default 2), so every ordinary batch succeeds
Records whose value is JSON with `"poison": true` fail every batch they are in.

A failing batch raises (a function error, ESM-SPEC §4.1). Journal lines, one per record:
  {"kind": "ok" | "fail", "pid", "inv", "topic", "partition", "offset", "key", "attempt"}
`inv` identifies the invocation; `key` is the record key as the event carries it (base64, null when
absent); `attempt` counts this process's invocations holding the record (1 = first).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
import zlib
from collections import Counter
from typing import Any

_attempts: Counter[tuple[str, int, int]] = Counter()
_lock = threading.Lock()


class BatchFailed(Exception):
    """Raised to make the invocation a function error."""


def record(event: dict[str, Any], context: Any) -> None:
    time.sleep(float(os.environ.get("ESM_E2E_SLEEP_SECONDS", "0")))
    records = [r for lane in event["records"].values() for r in lane]
    with _lock:
        attempts = []
        for r in records:
            key = (r["topic"], r["partition"], r["offset"])
            _attempts[key] += 1
            attempts.append(_attempts[key])
    failing = any(_fails(r, n) for r, n in zip(records, attempts, strict=True))
    inv, pid = uuid.uuid4().hex[:12], os.getpid()
    _append(os.environ["ESM_E2E_JOURNAL"], [
        {"kind": "fail" if failing else "ok", "pid": pid, "inv": inv, "topic": r["topic"],
         "partition": r["partition"], "offset": r["offset"], "key": r.get("key"),
         "attempt": n}
        for r, n in zip(records, attempts, strict=True)])
    if failing:
        raise BatchFailed(f"batch of {len(records)} failed on purpose")


def _fails(rec: dict[str, Any], attempt: int) -> bool:
    if _is_poison(rec):
        return True
    per_mille = int(os.environ.get("ESM_E2E_FAIL_PER_MILLE", "0"))
    if attempt > int(os.environ.get("ESM_E2E_FAIL_ATTEMPTS", "2")):
        return False
    offsets = os.environ.get("ESM_E2E_FAIL_OFFSETS", "")
    if offsets and str(rec["offset"]) in offsets.split(","):
        return True
    where = f"{rec['topic']}-{rec['partition']}:{rec['offset']}".encode()
    return zlib.crc32(where) % 1000 < per_mille


def _is_poison(rec: dict[str, Any]) -> bool:
    try:
        value = json.loads(base64.b64decode(rec.get("value") or ""))
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("poison") is True


def _append(path: str, lines: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one O_APPEND write: concurrent invocations never interleave
    finally:
        os.close(fd)
