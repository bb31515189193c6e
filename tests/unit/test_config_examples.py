"""The example configurations in config/ validate against the real connectors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from esm.config import load_config, validate_files

EXAMPLES = Path(__file__).resolve().parents[2] / "config"
ENV = {"TABLE_STREAM_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/"
                           "2024-01-01T00:00:00.000"}


def missing_connector_modules() -> set[str]:
    modules = {"connectors.sources.dynamodb_streams"}  # connectors not written yet
    return {m for m in modules if importlib.util.find_spec(m) is None}


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_validates(example: Path) -> None:
    # Given an example file and the connectors present today
    missing = missing_connector_modules()
    # When validating it
    problems = validate_files([str(example)], ENV)
    # Then the only acceptable problem is a connector that does not exist yet
    unexpected = [p for p in problems
                  if not any(f"cannot import {m!r}" in p for m in missing)]
    assert unexpected == []


def test_there_is_an_example_per_source_type_and_a_demo() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"demo.yaml", "kafka.yaml", "sqs.yaml", "dynamodb_streams.yaml"} <= names
    assert any("redis" in name for name in names)


def test_demo_example_loads_its_filter_and_destination() -> None:
    config = load_config([str(EXAMPLES / "demo.yaml")], {})
    mapping = config.mappings[0]
    assert mapping.filter_patterns == ('{"body": {"type": ["order"]}}',)
    assert mapping.on_failure is not None and mapping.on_failure.type == "file"
    assert mapping.maximum_retry_attempts == 2 and mapping.report_batch_item_failures
