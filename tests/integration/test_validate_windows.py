"""`esm validate` and the batching-window rule: AWS requires a window above 0 when
BatchSize > 10 for SQS (ESM-SPEC §1.2); Redis Streams has no such rule, so window 0 (deliver
at once) is valid there with any batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.e2e_support import run_cli
from tests.integration.test_e2e_memory import write_config


def _mapping(source: dict[str, Any], batch_size: int) -> dict[str, Any]:
    return {"name": "m", "source": source, "batch_size": batch_size,
            "maximum_batching_window_in_seconds": 0,
            "target": {"type": "http", "url": "http://127.0.0.1:9/invoke"}}


REDIS = {"type": "redis_streams", "url": "redis://127.0.0.1:6379/0", "streams": ["s"],
         "consumer_group": "g"}
SQS = {"type": "sqs", "queue_url": "http://127.0.0.1:9324/000000000000/q",
       "endpoint_url": "http://127.0.0.1:9324", "region": "us-east-1"}


def test_redis_accepts_window_0_with_batch_size_above_10(tmp_path: Path) -> None:
    # Given a Redis Streams mapping with batch_size 500 and no batching window
    config = write_config(tmp_path, [_mapping(REDIS, 500)])
    # When esm validate checks it
    result = run_cli("validate", str(config))
    # Then it is valid
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: "), result.stdout


def test_sqs_still_needs_a_window_with_batch_size_above_10(tmp_path: Path) -> None:
    # Given the same shape on SQS, where AWS's rule applies
    config = write_config(tmp_path, [_mapping(SQS, 500)])
    # When esm validate checks it
    result = run_cli("validate", str(config))
    # Then it exits 2 with AWS's text, naming the key
    assert result.returncode == 2, result.stdout
    assert "mappings[0].maximum_batching_window_in_seconds: Maximum batch window in seconds " \
           "must be greater than 0" in result.stderr
