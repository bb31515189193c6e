"""Lambda-style handlers the end-to-end tests run inside the daemon (`type: python` target).

The daemon is a separate process that the tests kill and restart, so the handlers report
what they did through an append-only journal file, not through memory. Every knob is an
environment variable read at call time (the test sets them when it starts the daemon):

  ESM_E2E_JOURNAL                 journal path (JSON lines); required
  ESM_E2E_SLEEP_SECONDS           time each invocation takes (default 0)
  ESM_E2E_FAIL_PER_MILLE          chance, per record and delivery, of reporting the record in
                                  `batchItemFailures` (default 0); deterministic: a hash of the
                                  record id and its delivery count decides
  ESM_E2E_FAIL_BELOW_DELIVERY     only deliveries numbered below this may fail (default 3), so
                                  every ordinary record succeeds eventually
  ESM_E2E_STOP_AT_FIRST_FAILURE   "1": the FIFO rule (ESM-SPEC §4.2): from the first failed
                                  record on, report every record of the batch as failed

RabbitMQ events (`rmqMessagesByQueue`) are read through `rabbitmq_records`. Record bodies are
JSON objects `{"id": "...", "group": "...", "seq": n}`; `"poison": true`
always fails. Journal lines (one `write` per invocation start and one per end, so a kill -9
leaves at most a torn last line, which `read_journal` skips):

  {"kind": "start", "pid", "records", "concurrent", "t"}   concurrent: calls running, this one too
  {"kind": "ok" | "fail", "pid", "id", "group", "seq", "delivery", "messageId", "t"}
  (t: epoch seconds, for reading a failed test's journal)

`keyed` (any source's event) journals, before it sleeps, what identifies an invocation:
  {"kind": "keyed", "pid", "ids", "key", "custom"}   ids: the records' broker ids; key:
  context.idempotency_key; custom: context.client_context.custom["idempotency_key"]
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import zlib
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_active = 0


def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Journal every record, fail the chosen ones, return them as `batchItemFailures`."""
    journal = os.environ["ESM_E2E_JOURNAL"]
    concurrent = _enter()
    try:
        records = event["Records"] if "Records" in event else rabbitmq_records(event)
        _append(journal, [{"kind": "start", "pid": os.getpid(), "records": len(records),
                           "concurrent": concurrent, "t": time.time()}])
        time.sleep(float(os.environ.get("ESM_E2E_SLEEP_SECONDS", "0")))
        lines = _settle(records)
        _append(journal, lines)
    finally:
        _leave()
    return {"batchItemFailures": [{"itemIdentifier": line["messageId"]}
                                  for line in lines if line["kind"] == "fail"]}


def keyed(event: dict[str, Any], context: Any) -> None:
    """Journal the invocation's record ids and idempotency key, then sleep."""
    if "records" in event:  # Kafka: records per topic-partition
        ids = [f"{r['topic']}-{r['partition']}:{r['offset']}"
               for lane in event["records"].values() for r in lane]
    else:
        ids = [r["messageId"] for r in event["Records"]]
    _append(os.environ["ESM_E2E_JOURNAL"], [{
        "kind": "keyed", "pid": os.getpid(), "ids": ids, "key": context.idempotency_key,
        "custom": context.client_context.custom["idempotency_key"]}])
    time.sleep(float(os.environ.get("ESM_E2E_SLEEP_SECONDS", "0")))


def _settle(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stop_at_first = os.environ.get("ESM_E2E_STOP_AT_FIRST_FAILURE") == "1"
    failing = False
    lines = []
    for rec in records:
        body = json.loads(rec["body"])
        delivery = delivery_count(rec)
        failing = (failing and stop_at_first) or should_fail(body, delivery)
        lines.append({"kind": "fail" if failing else "ok", "pid": os.getpid(),
                      "id": body.get("id"), "group": body.get("group"), "seq": body.get("seq"),
                      "delivery": delivery, "messageId": rec["messageId"], "t": time.time()})
    return lines


def should_fail(body: dict[str, Any], delivery: int) -> bool:
    if body.get("poison"):
        return True
    per_mille = int(os.environ.get("ESM_E2E_FAIL_PER_MILLE", "0"))
    below = int(os.environ.get("ESM_E2E_FAIL_BELOW_DELIVERY", "3"))
    if delivery >= below:
        return False
    return zlib.crc32(f"{body.get('id')}:{delivery}".encode()) % 1000 < per_mille


def delivery_count(rec: dict[str, Any]) -> int:
    """Redis Streams and memory: `deliveryCount`; SQS: `ApproximateReceiveCount`."""
    attributes = rec.get("attributes") or {}
    value = attributes.get("deliveryCount") or attributes.get("ApproximateReceiveCount") or 1
    return int(value)


def rabbitmq_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """An `aws:rmq` event's messages (ESM-SPEC §2.6) in the shape `_settle` reads: the body
    base64-decoded, the messageId, and the delivery number (quorum queues'
    x-delivery-count + 1, else 2 for a redelivered message)."""
    out = []
    for messages in event["rmqMessagesByQueue"].values():
        for message in messages:
            props = message["basicProperties"]
            earlier = (props.get("headers") or {}).get("x-delivery-count")
            delivery = earlier + 1 if isinstance(earlier, int) else \
                2 if message["redelivered"] else 1
            out.append({"body": base64.b64decode(message["data"]).decode(),
                        "messageId": props["messageId"],
                        "attributes": {"deliveryCount": delivery}})
    return out


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """Every complete line of a journal; a line torn by kill -9 is skipped."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def _append(path: str, lines: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one write with O_APPEND: lines of concurrent calls never mix
    finally:
        os.close(fd)


def _enter() -> int:
    global _active
    with _lock:
        _active += 1
        return _active


def _leave() -> None:
    global _active
    with _lock:
        _active -= 1
