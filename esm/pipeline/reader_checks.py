"""The reader's informative checks: the visibility-timeout warning at open, and what it
reports every `lag_interval_seconds` (lag per lane, summed, the largest; the oldest
unfinished record's age; the buffer's state). None may stop reading: they log and return."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from esm.config.types import MappingConfig
from esm.interfaces import Source
from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus

log = logging.getLogger("esm.pipeline.reader")


def warn_if_visibility_below_timeout(mapping: MappingConfig, source: Source,
                                     status: MappingStatus) -> None:
    """Queue sources learn their visibility timeout from the broker at open (SQS queue
    attribute). A target timeout above it lets a slow invocation's records be delivered
    to another consumer while still in flight: AWS refuses such a mapping (ESM-SPEC §1.2,
    checklist 40); esm warns, since the queue may be shared with other readers."""
    visibility = getattr(source, "visibility_timeout_seconds", None)
    timeout = mapping.target_timeout_seconds
    if source.traits.family == "stream" or not isinstance(visibility, (int, float)) \
            or visibility >= timeout:
        return
    log.warning("mapping %s: the queue's visibility timeout (%ss) is shorter than the "
                "target's timeout_seconds (%ss): records of a slow invocation can be "
                "delivered twice; raise the visibility timeout to at least %ss (AWS "
                "recommends 6 x the function timeout)", mapping.name, visibility,
                timeout, timeout)
    status.update(last_error=f"visibility timeout {visibility}s < target timeout {timeout}s")


def lane_lags(mapping: MappingConfig, source: Source) -> dict[str, float] | None:
    """The source's lag per lane it owns (`Source.lag`); None when unavailable."""
    try:
        return {lane: float(value) for lane, value in source.lag().items()}
    except Exception as exc:  # lag is informative; a failure here must not stop reading
        log.debug("mapping %s: lag unavailable: %s", mapping.name, exc)
        return None


def report_lag(metrics: MappingMetrics, lags: dict[str, float] | None, *,
               per_lane: bool) -> None:
    """Lag gauges by AWS's Kafka names (ESM-SPEC §6, checklist 68): `esm_sum_offset_lag`
    (also the older `esm_offset_lag`) and `esm_max_offset_lag` over the lanes this replica
    owns, and, opted in, `esm_lane_offset_lag{lane}`. An unknown lag (unavailable, or no
    lane known: sources leave out lanes they cannot measure) keeps the last values."""
    if not lags:
        return
    total = float(sum(lags.values()))
    metrics.offset_lag.set(total)
    metrics.sum_offset_lag.set(total)
    metrics.max_offset_lag.set(max(lags.values(), default=0.0))
    if per_lane:
        metrics.set_lane_lag(lags)


def oldest_age(now: float, timestamps: Iterable[float | None]) -> float:
    """Seconds the oldest of `timestamps` (arrival times of records read and not finished;
    None for none) has waited; 0 when there is none."""
    oldest = min((t for t in timestamps if t is not None), default=None)
    return 0.0 if oldest is None else max(0.0, now - oldest)


def report(mapping: MappingConfig, source: Source, metrics: MappingMetrics,
           status: MappingStatus, *, age_seconds: float, in_flight: int,
           **state: int | None) -> None:
    """Lag and age gauges, and the status `/mappings` shows (`state`: buffered_records,
    lanes, paused_lanes, outstanding_records)."""
    lags = lane_lags(mapping, source)
    report_lag(metrics, lags, per_lane=mapping.lane_lag_metrics)
    metrics.oldest_record_age.set(age_seconds)
    metrics.in_flight.set(in_flight)
    status.update(lag=float(sum(lags.values())) if lags else None,
                  in_flight_batches=in_flight, **state)
