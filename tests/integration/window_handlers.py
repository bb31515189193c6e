"""A tumbling-window aggregation handler written against Powertools' Kinesis event class,
as a user would for AWS (the `python` target runs it unmodified), plus a journal so the
end-to-end tests can see what it did from outside the daemon process.

The state counts records per partition key and keeps the sequence numbers folded in, so a
test can tell a record counted twice from one lost. Journal lines (JSON, one per invoke):
  {"kind": "invoke" | "final", "pid", "shard", "start", "end", "early", "seqs", "state"}
`seqs` are the invoke's records; `state` is the state the handler returns.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent, event_source


@event_source(data_class=KinesisStreamEvent)
def aggregate(event: KinesisStreamEvent, context: Any) -> dict[str, Any]:
    state = dict(event.state)
    seqs = [record.kinesis.sequence_number for record in event.records]
    if not event.is_final_invoke_for_window:
        counts = dict(state.get("counts", {}))
        for record in event.records:
            key = record.kinesis.partition_key
            counts[key] = counts.get(key, 0) + 1
        state = {"counts": counts, "seqs": [*state.get("seqs", []), *seqs]}
    window = event.window
    _journal({"kind": "final" if event.is_final_invoke_for_window else "invoke",
              "pid": os.getpid(), "shard": event.shard_id,
              "start": window.start if window else None, "end": window.end if window else None,
              "early": event.is_window_terminated_early, "seqs": seqs, "state": state})
    return {"state": state, "batchItemFailures": []}


def _journal(line: dict[str, Any]) -> None:
    path = os.environ.get("ESM_E2E_JOURNAL")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def kafka_sum(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The same aggregation for esm's Kafka windows: offsets folded into the state."""
    time.sleep(float(os.environ.get("ESM_E2E_SLEEP_SECONDS", "0")))
    offsets = [r["offset"] for records in event["records"].values() for r in records]
    state = dict(event["state"])
    if not event["isFinalInvokeForWindow"]:
        state = {"offsets": [*state.get("offsets", []), *offsets]}
    _journal({"kind": "final" if event["isFinalInvokeForWindow"] else "invoke",
              "pid": os.getpid(), "shard": event["shardId"], "start": event["window"]["start"],
              "end": event["window"]["end"], "early": event["isWindowTerminatedEarly"],
              "seqs": offsets, "state": state})
    return {"state": state}
