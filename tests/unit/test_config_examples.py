"""The example configurations in config/ validate against the real connectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from esm.config.loading import load_config, validate_files

EXAMPLES = Path(__file__).resolve().parents[2] / "config"
STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"
ENV = {"TABLE_STREAM_ARN": STREAM, "ORDERS_STREAM_ARN": STREAM, "DLQ_BUCKET": "dead-letters"}


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_validates(example: Path) -> None:
    # Given an example file; When validating it with its variables set; Then it is valid
    assert validate_files([str(example)], ENV) == []


def test_there_is_an_example_per_source_type_and_a_demo() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"demo.yaml", "kafka.yaml", "sqs.yaml", "dynamodb_streams.yaml", "kinesis.yaml",
            "redis_streams.yaml", "rabbitmq.yaml"} <= names


def test_demo_example_loads_its_filter_and_destination() -> None:
    config = load_config([str(EXAMPLES / "demo.yaml")], {})
    mapping = config.mappings[0]
    assert mapping.filter_patterns == ('{"body": {"type": ["order"]}}',)
    assert mapping.on_failure is not None and mapping.on_failure.type == "file"
    assert mapping.maximum_retry_attempts == 2 and mapping.report_batch_item_failures
