"""Prometheus metrics, named after AWS's event source mapping metrics (ESM-SPEC §6,
DESIGN §9), in base units, labelled by `mapping` only (never per record; per lane only for
`esm_lane_offset_lag`, opt-in and bounded by the lanes a replica owns).

One `Metrics` per daemon owns a CollectorRegistry (injected in tests); `for_mapping`
hands out a `MappingMetrics` with the label bound, so hot paths do no label lookups.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

_COUNTERS = {
    "polled": ("esm_polled_events", "Records read from the source."),
    "filtered_out": ("esm_filtered_out_events", "Records removed by filter criteria."),
    "invoked": ("esm_invoked_events", "Records sent to the target; retries count again."),
    "failed_invoke": ("esm_failed_invoke_events",
                      "Records in failed invocations, including partial batch failures."),
    "dropped": ("esm_dropped_events",
                "Records discarded without reaching an on-failure destination."),
    "destination_delivered": ("esm_on_failure_destination_delivered_events",
                              "Records sent to the on-failure destination."),
    "destination_failures": ("esm_destination_delivery_failures",
                             "Failed attempts to write a notice to the destination."),
    "deleted": ("esm_deleted_events", "Queue records deleted/acked after processing."),
    "committed": ("esm_committed_events", "Stream records whose position was committed."),
    "released": ("esm_released_events", "Queue records released for redelivery."),
    "invocations": ("esm_invocations", "Target invocations."),
    "invoke_errors": ("esm_invoke_errors", "Invocations that never reached the function."),
    "function_errors": ("esm_function_errors", "Invocations that failed in the function."),
    "retries": ("esm_retries", "Batch invocations that were retries."),
    "bisections": ("esm_bisections", "Batches split in two after a function error."),
    "polling_errors": ("esm_polling_errors", "Errors reading from the source."),
    "reader_restarts": ("esm_reader_restarts", "Times a mapping's reader was restarted."),
    "reader_thread_batches": ("esm_reader_thread_batches",
                              "Batches run on the reader's own thread (a quick in-process "
                              "function), not on a lane thread."),
    "reader_hand_ons": ("esm_reader_hand_ons",
                        "Times a batch held the reader's thread past the hold limit, so the "
                        "reader went on on a new thread."),
    "rate_limited_seconds": ("esm_rate_limit_wait_seconds",
                             "Seconds lanes waited for the mapping's rate limit."),
}


class Metrics:
    """All esm metrics of one daemon."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.counters = {
            key: Counter(name, doc, ["mapping"], registry=self.registry)
            for key, (name, doc) in _COUNTERS.items()
        }
        self.offset_lag = Gauge("esm_offset_lag", "Records not yet processed (sum over lanes).",
                                ["mapping"], registry=self.registry)
        # AWS's Kafka metric names (ESM-SPEC §6, checklist 68), for every source with lag.
        self.max_offset_lag = Gauge("esm_max_offset_lag",
                                    "Largest lag of one lane (partition, stream, shard).",
                                    ["mapping"], registry=self.registry)
        self.sum_offset_lag = Gauge("esm_sum_offset_lag", "Lag summed over the lanes owned.",
                                    ["mapping"], registry=self.registry)
        self.lane_offset_lag = Gauge("esm_lane_offset_lag",
                                     "Lag of one lane; only with lane_lag_metrics: true.",
                                     ["mapping", "lane"], registry=self.registry)
        self.oldest_record_age = Gauge(
            "esm_oldest_record_age_seconds",
            "How long the oldest record read and not yet finished has waited since the "
            "broker received it (0 when none).", ["mapping"], registry=self.registry)
        self.circuit_open = Gauge("esm_circuit_open",
                                  "1 while the mapping's circuit breaker is open.",
                                  ["mapping"], registry=self.registry)
        self.iterator_age = Gauge("esm_iterator_age_seconds",
                                  "Age of the last record of the last batch sent.",
                                  ["mapping"], registry=self.registry)
        self.in_flight = Gauge("esm_in_flight_batches", "Batches being processed.",
                               ["mapping"], registry=self.registry)
        self.up = Gauge("esm_mapping_up", "1 while the mapping's reader is running.",
                        ["mapping"], registry=self.registry)
        self.duration = Histogram("esm_invocation_duration_seconds", "Target invocation time.",
                                  ["mapping"], buckets=_DURATION_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("esm_batch_size", "Records per invocation.", ["mapping"],
                                    buckets=_BATCH_BUCKETS, registry=self.registry)

    def for_mapping(self, mapping: str) -> MappingMetrics:
        return MappingMetrics(self, mapping)


class MappingMetrics:
    """The metrics of one mapping, label bound. Counter methods take a record count."""

    def __init__(self, metrics: Metrics, mapping: str) -> None:
        self._c = {key: c.labels(mapping) for key, c in metrics.counters.items()}
        self.offset_lag = metrics.offset_lag.labels(mapping)
        self.max_offset_lag = metrics.max_offset_lag.labels(mapping)
        self.sum_offset_lag = metrics.sum_offset_lag.labels(mapping)
        self.oldest_record_age = metrics.oldest_record_age.labels(mapping)
        self.circuit_open = metrics.circuit_open.labels(mapping)
        self._lane_lag = metrics.lane_offset_lag
        self._mapping = mapping
        self._lanes_exported: set[str] = set()
        self.iterator_age = metrics.iterator_age.labels(mapping)
        self.in_flight = metrics.in_flight.labels(mapping)
        self.up = metrics.up.labels(mapping)
        self.duration = metrics.duration.labels(mapping)
        self.batch_size = metrics.batch_size.labels(mapping)

    def count(self, key: str, n: float = 1) -> None:
        if n:
            self._c[key].inc(n)

    def set_lane_lag(self, lags: dict[str, float]) -> None:
        """Export exactly these lanes' lag: lanes no longer owned lose their series, so
        the series stay bounded by the lanes (partitions, shards) this replica owns."""
        for lane in self._lanes_exported - lags.keys():
            self._lane_lag.remove(self._mapping, lane)
        for lane, value in lags.items():
            self._lane_lag.labels(self._mapping, lane).set(value)
        self._lanes_exported = set(lags)

    def value(self, key: str) -> float:
        """Current counter value (for /mappings, the demo summary and tests)."""
        return float(self._c[key]._value.get())

    def snapshot(self) -> dict[str, float]:
        return {key: self.value(key) for key in self._c}
