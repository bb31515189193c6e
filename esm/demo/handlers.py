"""The demo's Lambda-style handler: `handle(event, context)`, unchanged from what would run
on AWS Lambda with ReportBatchItemFailures on."""

from __future__ import annotations

import json
import threading
from typing import Any

_lock = threading.Lock()
_seen_flaky: set[str] = set()
_journal: list[str] = []


def reset() -> None:
    with _lock:
        _seen_flaky.clear()
        _journal.clear()


def journal() -> list[str]:
    with _lock:
        return list(_journal)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event["Records"]
    ids = [json.loads(r["body"])["id"] for r in records]
    failures = []
    for record in records:
        order = json.loads(record["body"])
        if order.get("poison"):
            _note(f"batch {ids}: order {order['id']} is poison -> raise")
            raise ValueError(f"cannot process order {order['id']}")
        if order.get("flaky") and record["messageId"] not in _seen_flaky:
            with _lock:
                _seen_flaky.add(record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    if failures:
        _note(f"batch {ids}: partial failure {[f['itemIdentifier'] for f in failures]}")
    else:
        _note(f"batch {ids}: ok")
    return {"batchItemFailures": failures}


def _note(line: str) -> None:
    with _lock:
        _journal.append(line)
