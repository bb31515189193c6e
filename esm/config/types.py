"""The parsed configuration: frozen values built once by `esm.config.loading.load_config`.

Nothing reads YAML or the environment after these exist (STYLE rule 4). Field names are
AWS's parameter names in snake_case (ESM-SPEC §1.2) where AWS has one.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """A resolved connector: its type name, class, and parsed `cls.Settings` instance."""

    type: str
    cls: builtins.type
    settings: Any


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """Delay before retry n (1-based): min(maximum, initial * multiplier**(n-1)), with full
    jitter over the upper half when `jitter` is on. An esm extension; AWS does not expose it."""

    initial_seconds: float = 1.0
    maximum_seconds: float = 60.0
    multiplier: float = 2.0
    jitter: bool = True


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Token buckets in front of the target (`esm.protection.rate_limit`), an esm extension.
    A rate of None is not limited; `burst` is what a bucket holds after an idle period, in
    its own unit (invocations, records); None means one second's worth (at least 1)."""

    records_per_second: float | None = None
    invocations_per_second: float | None = None
    burst: int | None = None


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Stop polling after `failure_threshold` consecutive invoke errors; probe the target
    with one batch every `probe_interval_seconds` (`esm.protection.breaker`)."""

    failure_threshold: int = 5
    probe_interval_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """One mapping: source → filters → batching → target → on-failure destination."""

    name: str
    source: ConnectorSpec
    target: ConnectorSpec
    enabled: bool = True
    on_failure: ConnectorSpec | None = None
    include_payload: bool = True
    filter_patterns: tuple[str, ...] = ()
    batch_size: int = 100
    maximum_batching_window_in_seconds: float = 0.0
    function_response_types: tuple[str, ...] = ()
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_in_seconds: int = -1
    parallelization_factor: int = 1
    tumbling_window_in_seconds: int = 0  # 0: off (ESM-SPEC §2.5)
    window_state: ConnectorSpec | None = None  # where windows live when the source keeps none
    maximum_concurrency: int | None = None
    max_deliveries: int | None = None  # queue family: from the source's settings, if any
    target_timeout_seconds: float = 3.0  # from the target's settings.timeout_seconds
    retry_backoff: RetryBackoff = field(default_factory=RetryBackoff)
    rate_limit: RateLimit | None = None
    rate_limit_group: str | None = None  # mappings naming the same group share the buckets
    circuit_breaker: CircuitBreaker | None = None
    lane_lag_metrics: bool = False  # export esm_lane_offset_lag{lane} (bounded by lanes)
    source_file: str = ""

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP server for /metrics, /healthz, /readyz and /mappings."""

    listen: str = "127.0.0.1:9102"
    auth_token: str | None = None  # bearer token for mutating admin endpoints
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    format: str = "text"  # text | json
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class Config:
    mappings: tuple[MappingConfig, ...]
    server: ServerConfig = field(default_factory=ServerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    shutdown_timeout_seconds: float = 30.0
    files: tuple[str, ...] = ()
