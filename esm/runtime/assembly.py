"""Builds the running parts of one mapping from its configuration: connectors, filter
matcher, failure policy, invoker, dead-letterer and the runner that ties them together.
Only wiring; every behaviour lives in the modules it wires.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from esm.config.types import ConnectorSpec, MappingConfig
from esm.failures.dead_letter import DeadLetterer, default_function_arn
from esm.failures.policy import FailurePolicy
from esm.filtering import Matcher, compile_filters
from esm.filtering.lenient import compile_lenient_filters
from esm.interfaces import (
    CheckpointStore,
    Clock,
    ConnectorContext,
    Destination,
    Source,
    SourceTraits,
    Target,
)
from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus
from esm.pipeline.invoker import Invoker
from esm.pipeline.lane_worker import LaneWorker
from esm.protection.breaker import Breaker
from esm.protection.rate_limit import RateLimiters
from esm.runtime.supervisor import MappingRunner
from esm.windows.book import WindowBook
from esm.windows.invoker import WindowInvoker

# Lane workers per mapping when scaling_config.maximum_concurrency is not set.
DEFAULT_MAX_IN_FLIGHT = 16


def build_matcher(mapping: MappingConfig) -> Matcher:
    """The mapping's filter: plain, or lenient on the source's data key (Kafka)."""
    traits: SourceTraits = getattr(mapping.source.cls, "traits")  # noqa: B009 (a class var)
    key = traits.lenient_filter_key
    if key:
        return compile_lenient_filters(mapping.filter_patterns, key)
    return compile_filters(list(mapping.filter_patterns))


def build_connector(spec: ConnectorSpec, context: ConnectorContext) -> Any:
    return spec.cls(spec.settings, context)


@dataclass
class MappingParts:
    """Long-lived parts of a mapping; the source is rebuilt on every reader restart."""

    mapping: MappingConfig
    context: ConnectorContext
    target: Target
    destination: Destination | None
    runner: MappingRunner
    window_store: Any = None

    def close(self) -> None:
        for part in (self.target, self.destination, self.window_store):
            if part is not None:
                part.close()


def build_invoker(mapping: MappingConfig, source: Source, target: Target,
                  metrics: MappingMetrics, status: MappingStatus, clock: Clock,
                  store: Any = None) -> Invoker:
    """The mapping's invoker: with tumbling windows, one that keeps each lane's window (a
    new book per source: the reader restores it from the source's saved windows, or from
    the mapping's `window_state` store)."""
    options: dict[str, Any] = {
        "source": source, "target": target, "timeout_seconds": mapping.target_timeout_seconds,
        "report_batch_item_failures": mapping.report_batch_item_failures,
        "metrics": metrics, "status": status, "mapping": mapping.name}
    if not mapping.tumbling_window_in_seconds:
        return Invoker(**options)
    return WindowInvoker(book=WindowBook(mapping.tumbling_window_in_seconds, store),
                         max_retries=mapping.maximum_retry_attempts, clock=clock, **options)


def assemble(mapping: MappingConfig, *, clock: Clock, stop: threading.Event,
             metrics: MappingMetrics, status: MappingStatus, drain_seconds: float,
             source_override: Any = None, reader_options: dict[str, float] | None = None,
             checkpoints: CheckpointStore | None = None,
             limiters: RateLimiters | None = None) -> MappingParts:
    """Build (but do not start) a mapping. `source_override` builds the source instead of
    the configured class (tests inject a scripted source); `limiters` are the daemon's, so
    mappings of one `rate_limit_group` share their buckets."""
    context = ConnectorContext(mapping=mapping.name, stop=stop, clock=clock,
                               checkpoints=checkpoints, batch_size=mapping.batch_size,
                               maximum_concurrency=mapping.maximum_concurrency,
                               wants_filter_view=bool(mapping.filter_patterns))
    target: Target = build_connector(mapping.target, context)
    load = getattr(target, "load", None)
    if callable(load):
        load()  # import the handler now: a bad handler fails at startup, not per batch
    destination = build_connector(mapping.on_failure, context) if mapping.on_failure else None
    store = build_connector(mapping.window_state, context) if mapping.window_state else None
    function_arn = getattr(target, "function_arn", None) or default_function_arn(mapping.name)
    rng = random.Random()
    limiter = (limiters or RateLimiters(clock)).for_mapping(mapping)
    breaker = Breaker(mapping.circuit_breaker, clock, mapping.name) \
        if mapping.circuit_breaker else None  # outlives reader restarts, like the target

    def build_source() -> Source:
        if source_override is not None:
            return source_override(context)  # type: ignore[no-any-return]
        return build_connector(mapping.source, context)  # type: ignore[no-any-return]

    def build_worker(source: Source, run_stop: threading.Event) -> LaneWorker:
        invoker = build_invoker(mapping, source, target, metrics, status, clock, store)
        letterer = DeadLetterer(mapping=mapping, source=source, destination=destination,
                                function_arn=function_arn, metrics=metrics, status=status,
                                clock=clock, stop=run_stop, rng=rng)
        policy = FailurePolicy.for_mapping(mapping, source.traits, rng)
        return LaneWorker(invoker=invoker, policy=policy, dead_letterer=letterer,
                          metrics=metrics, clock=clock, stop=run_stop,
                          envelope_bytes=source.event_overhead_bytes(),
                          limiter=limiter, breaker=breaker)

    runner = MappingRunner(
        mapping=mapping, build_source=build_source, build_worker=build_worker,
        matcher=build_matcher(mapping),
        max_in_flight=mapping.maximum_concurrency or DEFAULT_MAX_IN_FLIGHT,
        metrics=metrics, status=status, clock=clock, stop=stop, drain_seconds=drain_seconds,
        reader_options=reader_options,
    )
    return MappingParts(mapping, context, target, destination, runner, store)
