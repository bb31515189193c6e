"""One mapping's YAML data → `esm.config.types.MappingConfig`, with every problem found.

`build_mapping(raw, path, file)` checks a mapping's keys against `_Mapping` (AWS's parameter
names in snake_case with AWS's ranges, ESM-SPEC §1.2), resolves its source, target and
on-failure destination through `esm.registry`, compiles its FilterCriteria patterns
(ESM-SPEC §3.6), and applies the rules that depend on the source type from its class's
`traits` (`esm.interfaces.SourceTraits`, checklist §8 items 1–10) and its `check_mapping`
hook. File loading, `${VAR}` substitution and top-level sections live in `esm.config.loading`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Literal

from esm.config.schema import build, describe, join
from esm.config.types import (
    CircuitBreaker,
    ConnectorSpec,
    MappingConfig,
    RateLimit,
    RetryBackoff,
)
from esm.errors import ConfigError, FilterPatternError
from esm.interfaces import SourceTraits
from esm.registry import Kind, resolve

NAME_PATTERN = r"[a-z0-9][a-z0-9_.-]*"
MAX_FILTERS = 10  # AWS: 5 by default, up to 10 with a quota raise (ESM-SPEC §1.2)
MAX_PATTERN_CHARS = 4096
UNSUPPORTED_DESTINATION = ("Unsupported DestinationConfig parameter for given event source "
                           "mapping type.")
WINDOW_NEEDED = ("Maximum batch window in seconds must be greater than 0 if maximum batch "
                 "size is greater than 10")
_STREAM_ONLY = ("bisect_batch_on_function_error", "maximum_retry_attempts",
                "maximum_record_age_in_seconds", "parallelization_factor")


@dataclass(frozen=True, slots=True)
class _Filter:
    pattern: str | dict[str, Any]  # a mapping is stored as its JSON text


@dataclass(frozen=True, slots=True)
class _FilterCriteria:
    filters: tuple[_Filter, ...] = ()


@dataclass(frozen=True, slots=True)
class _Scaling:
    maximum_concurrency: int | None = field(default=None, metadata={"min": 2, "max": 1000})


@dataclass(frozen=True, slots=True)
class _Destinations:
    on_failure: dict[str, Any] | None = None  # {type, include_payload, ...settings}


@dataclass(frozen=True, slots=True)
class _Backoff:
    initial_seconds: float = field(default=1.0, metadata={"min": 0, "max": 3600})
    maximum_seconds: float = field(default=60.0, metadata={"min": 0, "max": 86400})
    multiplier: float = field(default=2.0, metadata={"min": 1, "max": 100})
    jitter: bool = True


@dataclass(frozen=True, slots=True)
class _RateLimit:
    records_per_second: float | None = field(default=None, metadata={
        "min": 0.001, "max": 1_000_000, "doc": "records sent to the target per second"})
    invocations_per_second: float | None = field(default=None, metadata={
        "min": 0.001, "max": 100_000, "doc": "invocations of the target per second"})
    burst: int | None = field(default=None, metadata={
        "min": 1, "max": 1_000_000,
        "doc": "what a bucket holds after an idle period; default one second's worth"})

    def __post_init__(self) -> None:
        if self.records_per_second is None and self.invocations_per_second is None:
            raise ValueError("set records_per_second, invocations_per_second or both")


@dataclass(frozen=True, slots=True)
class _CircuitBreaker:
    failure_threshold: int = field(default=5, metadata={
        "min": 1, "max": 10000, "doc": "consecutive invoke errors that open the breaker"})
    probe_interval_seconds: float = field(default=30.0, metadata={
        "min": 0.1, "max": 3600, "doc": "seconds between probe invocations while open"})


@dataclass(frozen=True, slots=True)
class _Mapping:
    """A mapping's keys as written; None means "not given, use the source's default"."""

    name: str = field(metadata={"pattern": NAME_PATTERN, "max_length": 64})
    source: dict[str, Any]
    target: dict[str, Any]
    enabled: bool = True
    filter_criteria: Any = None  # checked by `_patterns`, even when other keys are wrong
    batch_size: int | None = field(default=None, metadata={"min": 1, "max": 10000})
    maximum_batching_window_in_seconds: float | None = field(
        default=None, metadata={"min": 0, "max": 300})
    function_response_types: tuple[Literal["ReportBatchItemFailures"], ...] = field(
        default=(), metadata={"max_items": 1})
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = field(
        default=-1, metadata={"min": 0, "max": 10000, "allow": (-1,)})
    maximum_record_age_in_seconds: int = field(
        default=-1, metadata={"min": 60, "max": 604800, "allow": (-1,)})
    parallelization_factor: int | None = field(default=None, metadata={"min": 1, "max": 10})
    tumbling_window_in_seconds: int = field(default=0, metadata={"min": 0, "max": 900})
    window_state: dict[str, Any] | None = None  # {type: sqlite|redis|dynamodb, ...}
    scaling_config: _Scaling | None = None
    destination_config: _Destinations | None = None
    retry_backoff: _Backoff = field(default_factory=_Backoff)
    rate_limit: _RateLimit | None = None
    rate_limit_group: str | None = field(
        default=None, metadata={"pattern": NAME_PATTERN, "max_length": 64})
    circuit_breaker: _CircuitBreaker | None = None
    lane_lag_metrics: bool = False


def build_mapping(raw: object, path: str, file: str) -> tuple[MappingConfig | None, list[str]]:
    """One mapping from its YAML data at `path`, or None with every problem found."""
    if not isinstance(raw, dict):
        return None, [f"{path}: must be a mapping, got {describe(raw)}"]
    problems: list[str] = []
    raw = _without_on_success(raw, path, problems)
    keys, key_problems = build(_Mapping, raw, path)
    problems += key_problems
    source = _connector("sources", raw.get("source"), join(path, "source"), problems)
    target = _connector("targets", raw.get("target"), join(path, "target"), problems)
    window_state = _connector("window_stores", raw.get("window_state"),
                              join(path, "window_state"), problems)
    on_failure, include_payload = _on_failure(raw, path, problems)
    patterns = _patterns(raw.get("filter_criteria"), path, problems)
    if keys is None:
        return None, problems
    rules = _source_rules(keys, raw, source, path, problems) if source else {}
    if problems or source is None or target is None:
        return None, problems
    return MappingConfig(
        name=keys.name, source=source, target=target, enabled=keys.enabled,
        on_failure=on_failure, include_payload=include_payload, filter_patterns=patterns,
        function_response_types=keys.function_response_types,
        bisect_batch_on_function_error=keys.bisect_batch_on_function_error,
        maximum_record_age_in_seconds=keys.maximum_record_age_in_seconds,
        parallelization_factor=keys.parallelization_factor or 1,
        tumbling_window_in_seconds=keys.tumbling_window_in_seconds,
        window_state=window_state,
        maximum_concurrency=keys.scaling_config.maximum_concurrency
        if keys.scaling_config else None,
        max_deliveries=_max_deliveries(source.settings, on_failure is not None),
        target_timeout_seconds=float(getattr(target.settings, "timeout_seconds", 3.0)),
        retry_backoff=RetryBackoff(**{f: getattr(keys.retry_backoff, f) for f in (
            "initial_seconds", "maximum_seconds", "multiplier", "jitter")}),
        **_protection(keys), source_file=file, **rules), []


def _protection(keys: _Mapping) -> dict[str, Any]:
    """The target-protection keys (esm extensions) as config values."""
    limit, breaker = keys.rate_limit, keys.circuit_breaker
    return {
        "rate_limit": RateLimit(limit.records_per_second, limit.invocations_per_second,
                                limit.burst) if limit else None,
        "rate_limit_group": keys.rate_limit_group,
        "circuit_breaker": CircuitBreaker(breaker.failure_threshold,
                                          breaker.probe_interval_seconds) if breaker else None,
        "lane_lag_metrics": keys.lane_lag_metrics,
    }


def _max_deliveries(settings: object, has_destination: bool) -> int | None:
    """The queue source's daemon-side delivery limit: `max_deliveries` when it has one, else
    `max_deliveries_with_destination` when an on-failure destination is set (ActiveMQ: without
    one, the source hands spent messages to the broker's own dead-letter queue)."""
    limit = getattr(settings, "max_deliveries", None)
    if limit is None and has_destination:
        limit = getattr(settings, "max_deliveries_with_destination", None)
    return limit if isinstance(limit, int) else None


def _without_on_success(raw: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    """ESM-SPEC §1.3: an OnSuccess destination is rejected with AWS's own message."""
    destinations = raw.get("destination_config")
    if not isinstance(destinations, dict) or "on_success" not in destinations:
        return raw
    problems.append(f"{path}.destination_config.on_success: {UNSUPPORTED_DESTINATION}")
    rest = {k: v for k, v in destinations.items() if k != "on_success"}
    return {**raw, "destination_config": rest}


def _connector(kind: Kind, raw: object, path: str, problems: list[str],
               reserved: tuple[str, ...] = ()) -> ConnectorSpec | None:
    """`{type, ...settings}` → the registered class and its parsed `Settings`."""
    if not isinstance(raw, dict):
        return None  # the mapping's own schema reports a missing or non-mapping value
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        problems.append(f"{path}: missing required key 'type'" if type_name is None else
                        f"{path}.type: must be a string, got {describe(type_name)}")
        return None
    try:
        cls = resolve(kind, type_name)
    except ConfigError as exc:
        problems += [f"{path}.type: {problem}" for problem in exc.problems]
        return None
    settings_cls = getattr(cls, "Settings", None)
    if not (isinstance(settings_cls, type) and is_dataclass(settings_cls)):
        problems.append(f"{path}.type: {type_name!r} declares no Settings dataclass")
        return None
    data = {k: v for k, v in raw.items() if k != "type" and k not in reserved}
    settings, settings_problems = build(settings_cls, data, path)
    problems += settings_problems
    return None if settings is None else ConnectorSpec(type_name, cls, settings)


def _on_failure(raw: dict[str, Any], path: str,
                problems: list[str]) -> tuple[ConnectorSpec | None, bool]:
    """The on-failure destination and its `include_payload` flag (default true, DESIGN §7)."""
    destinations = raw.get("destination_config")
    spec = destinations.get("on_failure") if isinstance(destinations, dict) else None
    if not isinstance(spec, dict):
        return None, True
    where = join(path, "destination_config.on_failure")
    include_payload = spec.get("include_payload", True)
    if not isinstance(include_payload, bool):
        problems.append(f"{where}.include_payload: must be a boolean, "
                        f"got {describe(include_payload)}")
    connector = _connector("destinations", spec, where, problems, ("include_payload",))
    return connector, include_payload is not False


def _patterns(raw: object, path: str, problems: list[str]) -> tuple[str, ...]:
    """FilterCriteria patterns as JSON text, each compiled once to prove it valid
    (ESM-SPEC §1.2 limits, §3.6 validation)."""
    from esm.filtering import compile_pattern  # lazily: only configs with filters need it

    criteria, criteria_problems = build(_FilterCriteria, {} if raw is None else raw,
                                        join(path, "filter_criteria"))
    problems += criteria_problems
    filters = criteria.filters if criteria else ()
    where = f"{path}.filter_criteria.filters"
    if len(filters) > MAX_FILTERS:
        problems.append(f"{where}: at most {MAX_FILTERS} filters are allowed (AWS's default "
                        f"quota is 5, raised up to {MAX_FILTERS}), got {len(filters)}")
    patterns = []
    for index, item in enumerate(filters):
        text = item.pattern if isinstance(item.pattern, str) else json.dumps(
            item.pattern, default=str)
        if len(text) > MAX_PATTERN_CHARS:
            problems.append(f"{where}[{index}].pattern: must be at most {MAX_PATTERN_CHARS} "
                            f"characters, got {len(text)}")
            continue
        try:
            compile_pattern(text)
        except FilterPatternError as exc:
            problems.append(f"{where}[{index}].pattern: Invalid filter pattern definition: "
                            f"{'; '.join(exc.problems)}")
        patterns.append(text)
    return tuple(patterns)


def _source_rules(keys: _Mapping, raw: dict[str, Any], source: ConnectorSpec, path: str,
                  problems: list[str]) -> dict[str, Any]:
    """Defaults and rules that depend on the source type (ESM-SPEC §1.2, §4.4, §8 1–10)."""
    traits = getattr(source.cls, "traits", None)
    if not isinstance(traits, SourceTraits):
        problems.append(f"{path}.source.type: {source.type!r} declares no SourceTraits")
        return {}
    batch_size = keys.batch_size or traits.default_batch_size
    window = keys.maximum_batching_window_in_seconds
    window = traits.default_batching_window_seconds if window is None else window
    retries = keys.maximum_retry_attempts
    has_on_failure = bool(keys.destination_config and keys.destination_config.on_failure)
    if batch_size > traits.max_batch_size:
        problems.append(f"{path}.batch_size: must be 1–{traits.max_batch_size} for a "
                        f"{source.type} source, got {batch_size}")
    # Only an explicit batch size triggers it: the defaults of every source are valid.
    if traits.window_required_above_10 and keys.batch_size and batch_size > 10 and window == 0:
        problems.append(f"{path}.maximum_batching_window_in_seconds: {WINDOW_NEEDED}")
    problems += _window_problems(keys, traits, source.type, path)
    problems += _family_problems(traits, raw, source.type, path)
    if has_on_failure and not traits.supports_on_failure_destination:
        problems.append(f"{path}.destination_config.on_failure: {UNSUPPORTED_DESTINATION} "
                        f"({source.type!r} sources do not support on-failure destinations)")
    if has_on_failure and retries == -1 and traits.caps_infinite_retries_with_destination:
        retries = 10  # ESM-SPEC §4.4: infinite retries with a destination means 10
    problems += _hook_problems(source, raw, batch_size, window, path)
    return {"batch_size": batch_size, "maximum_batching_window_in_seconds": window,
            "maximum_retry_attempts": retries}


def _window_problems(keys: _Mapping, traits: SourceTraits, source_type: str,
                     path: str) -> list[str]:
    """ESM-SPEC §1.2, §2.5: tumbling windows on Kinesis and DynamoDB Streams (state kept on
    the lease rows), and beyond AWS on Kafka (state in a `window_state` store); one batch
    per lane with them (a window's state is one sequence of invocations)."""
    if not keys.tumbling_window_in_seconds:
        return [f"{path}.window_state: only used with tumbling_window_in_seconds"
                ] if keys.window_state is not None else []
    if not traits.supports_tumbling_windows:
        return [f"{path}.tumbling_window_in_seconds: applies only to Kinesis, DynamoDB "
                f"Streams and Kafka sources (ESM-SPEC §1.2), not {source_type!r}"]
    if not traits.keeps_windows and keys.window_state is None:
        return [f"{path}.window_state: required with tumbling windows on {source_type!r} "
                "(where each lane's window state is kept: {type: sqlite|redis|dynamodb, …})"]
    if traits.keeps_windows and keys.window_state is not None:
        return [f"{path}.window_state: {source_type!r} keeps window state with its "
                "checkpoints; remove this key"]
    if (keys.parallelization_factor or 1) > 1:
        return [f"{path}.tumbling_window_in_seconds: cannot be combined with "
                "parallelization_factor > 1 in esm (a window's state is passed from one "
                "invocation of the shard to the next)"]
    return []


def _family_problems(traits: SourceTraits, raw: dict[str, Any], source_type: str,
                     path: str) -> list[str]:
    """Stream-only keys on a queue source, and parallelization_factor on a source whose
    records carry no key to keep order by (ESM-SPEC §1.2; esm adds Kafka and Redis)."""
    keyed = traits.supports_parallelization_factor
    if traits.family == "queue":
        return [f"{path}.{key}: applies only to stream sources; {source_type!r} is a "
                "queue source, whose broker redelivers failed records"
                for key in _STREAM_ONLY if key in raw
                and not (key == "parallelization_factor" and keyed)]
    if raw.get("parallelization_factor", 1) != 1 and not keyed:
        return [f"{path}.parallelization_factor: applies only to Kafka, Kinesis, DynamoDB "
                f"Streams and Redis Streams sources; {source_type!r} records carry no key "
                "to keep order by"]
    return []


def _hook_problems(source: ConnectorSpec, raw: dict[str, Any], batch_size: int,
                   window: float, path: str) -> list[str]:
    """The source's own `check_mapping(settings, mapping_data)` rules, under `path`. The data
    is the mapping as written, with batch size and window set to their effective values."""
    hook = getattr(source.cls, "check_mapping", None)
    if not callable(hook):
        return []
    data = {**raw, "batch_size": batch_size, "maximum_batching_window_in_seconds": window}
    # A problem that starts with a key path ("batch_size: ...") is joined onto the mapping's.
    return [f"{path}.{p}" if _KEYED.match(p) else f"{path}: {p}"
            for p in hook(source.settings, data)]


_KEYED = re.compile(r"[A-Za-z_][\w.\[\]]*: ")
