"""One `AwsMapping` → one esm mapping (a dict in esm's key order), or None with a note.

AWS parameter names map to esm's keys (README "Mapping keys"): `BatchSize` → `batch_size`,
`FilterCriteria.Filters[].Pattern` → `filter_criteria.filters[].pattern`, and so on. The
source, destination and target blocks come from `sources`, `kafka_source`, `mq_source`,
`destinations` and `targets`. Every parameter nobody took is noted with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esm.aws_import.arns import parse_arn
from esm.aws_import.documents import AwsMapping
from esm.aws_import.intrinsics import Symbol
from esm.aws_import.translate.destinations import on_failure
from esm.aws_import.translate.kafka import kafka_source
from esm.aws_import.translate.mq import mq_source
from esm.aws_import.translate.sources import (
    STREAM_KINDS,
    dynamodb_source,
    kinesis_source,
    source_kind,
    sqs_source,
)
from esm.aws_import.translate.targets import target
from esm.aws_import.translate.translation import Options, Translation
from esm.aws_import.variables import Findings

_SIMPLE = {"BatchSize": "batch_size",
           "MaximumBatchingWindowInSeconds": "maximum_batching_window_in_seconds"}
# AWS's defaults (ESM-SPEC §1.2), which get/list output echoes: left to esm's same defaults,
# since writing them out would make the "batch size > 10 needs a window" rule fire.
_DEFAULTS = {"BatchSize": {"sqs": 10, "*": 100},
             "MaximumBatchingWindowInSeconds": {"sqs": 0, "kinesis": 0, "dynamodb": 0}}
_STREAM_ONLY = {"BisectBatchOnFunctionError": "bisect_batch_on_function_error",
                "MaximumRetryAttempts": "maximum_retry_attempts",
                "MaximumRecordAgeInSeconds": "maximum_record_age_in_seconds",
                "ParallelizationFactor": "parallelization_factor"}
_STREAM_DEFAULTS = {"BisectBatchOnFunctionError": False, "MaximumRetryAttempts": -1,
                    "MaximumRecordAgeInSeconds": -1, "ParallelizationFactor": 1}
# The mapping's state in AWS (get/list output), and the function, which `targets` reads.
NOT_SETTINGS = ("UUID", "EventSourceMappingArn", "FunctionArn", "FunctionName", "LastModified",
             "LastProcessingResult", "StateTransitionReason", "State")
WHY_NOT = {
    "KMSKeyArn": "esm keeps filter criteria in its own configuration; no KMS encryption",
    "MetricsConfig": "esm always exports its metrics at /metrics",
    "ProvisionedPollerConfig": "esm has no provisioned mode (sqs: see pollers and slots)",
    "LoggingConfig": "set esm's logging section instead",
    "Tags": "esm mappings carry no tags",
    "DocumentDBEventSourceConfig": "esm has no DocumentDB source",
    "SecretsManagerKmsKeyId": "esm reads credentials from environment variables",
    "PartialBatchResponse": "CloudFormation does not use it; see FunctionResponseTypes",
    "FilterCriteriaError": "AWS could not decrypt the filter criteria; they are not in the "
                           "input",
}
# Examples that pass validation, for variables standing for these keys' values.
_EXAMPLES = {"enabled": "true", "batch_size": "10", "maximum_batching_window_in_seconds": "1",
             "maximum_retry_attempts": "2", "maximum_record_age_in_seconds": "3600",
             "parallelization_factor": "1", "maximum_concurrency": "2",
             "bisect_batch_on_function_error": "false", "starting_position": "LATEST",
             "starting_position_timestamp": "1700000000", "topics": "orders",
             "consumer_group_id": "esm", "queue": "orders", "timeout_seconds": "30"}
Builder = Callable[[Translation], dict[str, Any]]
_SOURCES: dict[str, Builder] = {
    "sqs": sqs_source, "kinesis": kinesis_source, "dynamodb": dynamodb_source,
    "msk": lambda t: kafka_source(t, "msk"), "kafka": lambda t: kafka_source(t, "kafka"),
    "mq": mq_source}


def translate(aws: AwsMapping, name: str, options: Options,
              findings: Findings) -> dict[str, Any] | None:
    t = Translation(aws, options, findings, name)
    kind = source_kind(t)
    if kind is None:
        value = t.peek("EventSourceArn")
        arn = parse_arn(value)
        shown = value.description if isinstance(value, Symbol) else repr(value)
        t.note("EventSourceArn", f"esm has no source for {arn.service} ARNs: mapping not "
                                 "imported" if arn else f"cannot tell the source type of "
                                 f"{shown}: mapping not imported")
        return None
    mapping: dict[str, Any] = {"name": name}
    _enabled(t, mapping)
    source = _SOURCES[kind](t)
    mapping["source"] = source
    _filters(t, mapping)
    _common(t, mapping, kind)
    mapping["target"] = target(t)
    destination = on_failure(t, source)
    if destination and kind in ("sqs", "mq"):
        t.note("DestinationConfig", "not carried over: AWS dead-letters queue sources through "
                                    "the broker (SQS redrive policy, MQ dead-letter queues)")
    elif destination:
        mapping["destination_config"] = {"on_failure": destination}
    _leftovers(t)
    materialized: dict[str, Any] = _materialized(t, mapping)
    return materialized


def _materialized(t: Translation, value: Any, key: str = "") -> Any:
    """`value` with every Symbol still in it (a `!Ref` to a parameter without a default
    as BatchSize, Enabled, a topic, ...) made a `${VARIABLE}` with an example of its kind."""
    if isinstance(value, Symbol):
        return t.variable(value.stem(), value.description, _EXAMPLES.get(key, "value"))
    if isinstance(value, dict):
        return {k: _materialized(t, v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialized(t, v, key) for v in value]
    return value


def _enabled(t: Translation, mapping: dict[str, Any]) -> None:
    enabled = t.take("Enabled")
    state = t.peek("State")
    if enabled is False or state in ("Disabled", "Disabling"):
        mapping["enabled"] = False
    elif enabled not in (None, True):
        mapping["enabled"] = enabled  # a variable: the deployment decides


def _filters(t: Translation, mapping: dict[str, Any]) -> None:
    criteria = t.take("FilterCriteria")
    filters = criteria.get("Filters") if isinstance(criteria, dict) else None
    if criteria is not None and not isinstance(filters, list):
        t.note("FilterCriteria", f"not carried over: no Filters list in {criteria!r}")
        return
    patterns = [f.get("Pattern") for f in filters or [] if isinstance(f, dict)]
    kept = [p for p in patterns if isinstance(p, str | dict) and p != ""]
    if len(kept) != len(patterns):
        t.note("FilterCriteria", "a filter whose Pattern the template cannot resolve was "
                                 "not carried over")
    if kept:
        mapping["filter_criteria"] = {"filters": [{"pattern": p} for p in kept]}


def _common(t: Translation, mapping: dict[str, Any], kind: str) -> None:
    for aws_key, key in _SIMPLE.items():
        value = t.take(aws_key)
        defaults = _DEFAULTS[aws_key]
        if value is not None and value != defaults.get(kind, defaults.get("*")):
            mapping[key] = value
    types = t.take("FunctionResponseTypes")
    if types:
        mapping["function_response_types"] = types
    for aws_key, key in _STREAM_ONLY.items():
        value = t.take(aws_key)
        if value is None or (value == _STREAM_DEFAULTS[aws_key]
                             and type(value) is type(_STREAM_DEFAULTS[aws_key])):
            continue
        if kind not in STREAM_KINDS:
            t.note(aws_key, f"not carried over: applies only to stream sources, not {kind}")
        elif aws_key == "ParallelizationFactor" and kind in ("msk", "kafka"):
            t.note(aws_key, "not carried over: applies only to Kinesis and DynamoDB Streams")
        else:
            mapping[key] = value
    scaling = t.take("ScalingConfig")
    if isinstance(scaling, dict) and scaling.get("MaximumConcurrency") is not None:
        mapping["scaling_config"] = {"maximum_concurrency": scaling["MaximumConcurrency"]}
    _tumbling_window(t, mapping, kind)


def _tumbling_window(t: Translation, mapping: dict[str, Any], kind: str) -> None:
    window = t.take("TumblingWindowInSeconds")
    if window in (None, 0):
        return
    if kind not in ("kinesis", "dynamodb"):
        t.note("TumblingWindowInSeconds", f"{window} not carried over: tumbling windows "
                                          "apply only to Kinesis and DynamoDB Streams")
    elif mapping.get("parallelization_factor", 1) not in (1, "1"):
        t.note("TumblingWindowInSeconds", f"{window} not carried over: esm runs tumbling "
                                          "windows with parallelization_factor 1")
    else:
        mapping["tumbling_window_in_seconds"] = window


def _leftovers(t: Translation) -> None:
    for key, value in t.leftovers().items():
        if key in NOT_SETTINGS:
            continue
        if value in (None, [], {}) and key not in WHY_NOT:
            continue  # an empty echo of an unset parameter (get/list output)
        reason = WHY_NOT.get(key, "esm has no equivalent")
        t.note(key, f"not carried over: {reason}")
