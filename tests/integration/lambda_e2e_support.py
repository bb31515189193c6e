"""Helpers for the end-to-end tests of unmodified Lambda handlers behind esm's `lambda`
target (at the Runtime Interface Emulator) and `http` target (at the Lambda HTTP adapter):
the function's journal, the file on-failure destination's notices, a Redis Streams
mapping, and `run_until` (the daemon until a condition holds)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.integration.e2e_support import DaemonProcess, daemon_env, wait_until, write_config

FUNCTIONS = "tests.lambda_functions"
TIMEOUT = 2  # the function's, and the visibility timeouts that must cover it
FAST_RETRIES = {"initial_seconds": 0.2, "maximum_seconds": 0.5}


def journal_outcomes(journal: Path, outcome: str) -> list[str]:
    """Record ids the function's record handler journaled with this outcome (ok, fail)."""
    if not journal.exists():
        return []
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line]
    return [str(line["id"]) for line in lines if line["outcome"] == outcome]


def read_notices(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def noticed_ids(path: Path, key: str = "messageId") -> list[str]:
    """Ids of the records carried by the notices' payloads: SQS/Redis `messageId`, Kinesis
    sequence number (key "kinesis"), Kafka `topic-partition@offset` (key "kafka")."""
    ids = []
    for notice in read_notices(path):
        payload = notice["payload"]
        if key == "kafka":
            ids += [f"{r['topic']}-{r['partition']}@{r['offset']}"
                    for records in payload["records"].values() for r in records]
            continue
        for record in payload["Records"]:
            ids.append(str(record["kinesis"]["sequenceNumber"] if key == "kinesis"
                           else record[key]))
    return ids


def file_destination(tmp_path: Path) -> dict[str, Any]:
    return {"on_failure": {"type": "file", "path": str(tmp_path / "failures.jsonl")}}


def run_until(tmp_path: Path, mapping: dict[str, Any], done: Callable[[], bool],
              describe: Callable[[], str], timeout_seconds: float = 60) -> dict[str, float]:
    """`esm run` with this one mapping until `done()`; its /metrics then. Killed after."""
    config = write_config(tmp_path, [mapping])
    with DaemonProcess(config, daemon_env(tmp_path / "unused.jsonl"),
                       tmp_path / "daemon.log") as daemon:
        daemon.wait_ready()
        wait_until(done, timeout_seconds, lambda: f"{describe()}\n{daemon.log_tail()}")
        return daemon.metrics()


def redis_mapping(url: str, stream: str, target: dict[str, Any], tmp_path: Path,
                  name: str = "rie-redis") -> dict[str, Any]:
    return {
        "name": name,
        "source": {"type": "redis_streams", "url": url, "streams": [stream],
                   "consumer_group": f"{stream}-g", "visibility_timeout_seconds": TIMEOUT,
                   "max_deliveries": 2, "block_milliseconds": 200},
        "batch_size": 10,
        "function_response_types": ["ReportBatchItemFailures"],
        "retry_backoff": FAST_RETRIES,
        "target": target,
        "destination_config": file_destination(tmp_path),
    }


def pending_and_lag(client: redis.Redis, stream: str) -> tuple[int, int]:
    [info] = client.xinfo_groups(stream)
    return int(info["pending"]), int(info["lag"] if info["lag"] is not None else -1)
