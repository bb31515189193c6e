"""Helpers for the ESM-SPEC §8 checklist tests (tests/unit/test_checklist_*.py).

Configs go through the real loader (`esm.config.loading.load_config`) on YAML written to a
temporary directory, with real source connectors, so the rules tested are the ones a user
meets. Pipelines run on `tests.unit.runtime_fakes.Rig`.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from connectors.memory.source import MemorySource
from esm.config.loading import load_config, validate_files
from esm.config.types import MappingConfig
from esm.interfaces import SourceTraits
from esm.records import Event, InvokeResult, Returned
from tests.unit.runtime_fakes import Rig, ScriptedTarget

TARGET = 'target: {type: python, handler: "json:dumps"}'

SOURCES = {
    "sqs": 'source: {type: sqs, queue_url: "http://localhost:9324/000000000000/orders"}',
    "sqs_fifo": 'source: {type: sqs, queue_url: '
                '"http://localhost:9324/000000000000/orders.fifo"}',
    "kafka": 'source: {type: kafka, bootstrap_servers: ["localhost:9092"], topics: [orders], '
             'consumer_group_id: esm-orders}',
    "dynamodb_streams": 'source: {type: dynamodb_streams, stream_arn: '
                        '"arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2024-01-01", '
                        'starting_position: TRIM_HORIZON}',
    "kinesis": 'source: {type: kinesis, stream_name: orders, starting_position: TRIM_HORIZON}',
    "memory": "source: {type: memory}",
    "memory_queue": "source: {type: memory_queue}",
}

FILE_DESTINATION = "destination_config: {on_failure: {type: file, path: dead.jsonl}}"


def mapping_yaml(source: str, *lines: str) -> str:
    """A one-mapping config: `source` is a key of SOURCES or a literal `source:` line."""
    body = [SOURCES.get(source, source), TARGET, *lines]
    indented = "\n".join("    " + line for line in body)
    return f"mappings:\n  - name: m\n{indented}\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "esm.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def load_mapping(tmp_path: Path, source: str, *lines: str) -> MappingConfig:
    """The one mapping of a valid config (ConfigError if it is not valid)."""
    return load_config([write(tmp_path, mapping_yaml(source, *lines))], {}).mappings[0]


def problems_of(tmp_path: Path, source: str, *lines: str) -> list[str]:
    """Every problem the loader reports for a one-mapping config (empty when valid)."""
    return validate_files([write(tmp_path, mapping_yaml(source, *lines))], {})


def bodies(*ids: int) -> list[str]:
    return [json.dumps({"id": i}) for i in ids]


def ids_of(records: list[dict[str, Any]]) -> list[int]:
    return [json.loads(r["body"])["id"] for r in records]


def failing(message: str = "boom") -> Callable[[list[dict[str, Any]]], Any]:
    """A ScriptedTarget behaviour whose function always raises."""
    def behaviour(records: list[dict[str, Any]]) -> Any:
        raise ValueError(message)
    return behaviour


def fail_ids(*ids: int) -> Callable[[list[dict[str, Any]]], Any]:
    """A behaviour that reports the records with these ids in batchItemFailures."""
    def behaviour(records: list[dict[str, Any]]) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records
                                      if json.loads(r["body"])["id"] in ids]}
    return behaviour


class RawTarget(ScriptedTarget):
    """Answers every invocation with this raw response body, as an HTTP target would."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.raw = raw

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        super().invoke(event, timeout_seconds)  # records the call
        try:
            return Returned(json.loads(self.raw) if self.raw.strip() else None, self.raw)
        except json.JSONDecodeError:
            return Returned(None, self.raw, valid_json=False)


class PositionProbe:
    """Wraps a behaviour and records the lane's committed position at every invocation,
    to show what was committed while a batch was being retried (settlements the worker
    sent before the invocation are applied first)."""

    def __init__(self, behaviour: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.behaviour = behaviour or (lambda records: None)
        self.rig: Rig | None = None
        self.committed_at_call: list[int] = []

    def __call__(self, records: list[dict[str, Any]]) -> Any:
        assert self.rig is not None
        # The Rig runs workers on the reader's thread, so settlements sent before this
        # invocation can be applied here, as the reader thread would have done meanwhile.
        self.rig.reader.in_flight.apply(0)
        self.committed_at_call.append(self.rig.broker.committed("lane-0"))
        return self.behaviour(records)


class KafkaLikeMemorySource(MemorySource):
    """The memory stream source with Kafka's traits: infinite retries plus an on-failure
    destination are capped at 10 (ESM-SPEC §4.4), value filter clause lenient."""

    traits: ClassVar[SourceTraits] = SourceTraits(
        family="stream", default_batching_window_seconds=0.5, window_required_above_10=False,
        caps_infinite_retries_with_destination=True, batch_info_key="KafkaBatchInfo",
        lenient_filter_key="value")


def fails_first(times: int) -> Callable[[list[dict[str, Any]]], Any]:
    """A behaviour whose function raises on its first `times` invocations, then succeeds."""
    calls: list[int] = []

    def behaviour(records: list[dict[str, Any]]) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise ValueError(f"down (call {len(calls)})")
    return behaviour


def first_call(answer: Callable[[list[dict[str, Any]]], Any]) -> Callable[
        [list[dict[str, Any]]], Any]:
    """A behaviour that answers with `answer(records)` once, then returns None (success)."""
    calls: list[int] = []

    def behaviour(records: list[dict[str, Any]]) -> Any:
        calls.append(1)
        return answer(records) if len(calls) == 1 else None
    return behaviour
