"""The esm exception tree.

    EsmError
    ├── ConfigError                 bad configuration; carries every problem found
    │   └── FilterPatternError      an invalid FilterCriteria pattern (also a ValueError)
    ├── SourceUnavailable           the broker cannot be reached; retriable
    ├── InvokeError                 the batch never reached the function (connect error,
    │                               throttle, 429/502/503/504, timeout of the transport);
    │                               retriable and does not use up maximum_retry_attempts
    │                               (ESM-SPEC §4.1)
    └── DestinationError            a notice could not be made durable; the lane stops and
                                    retries the write, nothing is acked past it (DESIGN §7)

Connectors translate their client library's exceptions into these at the boundary
(`raise SourceUnavailable(...) from exc`); the core catches only these.
"""

from __future__ import annotations

from collections.abc import Iterable


class EsmError(Exception):
    """Base of every error esm raises on purpose."""

    retriable: bool = False


class ConfigError(EsmError, ValueError):
    """Configuration is invalid. `problems` lists every problem as `FILE: path: problem`."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FilterPatternError(ConfigError):
    """A filter pattern is invalid; the message names the JSON path and the rule broken."""


class SourceUnavailable(EsmError):
    """The source's broker could not be reached or answered with a transient error."""

    retriable = True


class InvokeError(EsmError):
    """The invocation did not reach the function; retried without using up retries.

    `retry_after_seconds`: how long the target asked callers to wait before trying again
    (HTTP `Retry-After` on 429/503, Lambda's `TooManyRequestsException.retryAfterSeconds`);
    None when it gave no hint. The failure policy waits at least that long, capped by
    `retry_backoff.maximum_seconds`."""

    retriable = True

    def __init__(self, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DestinationError(EsmError):
    """A notice could not be written durably to the on-failure destination."""

    retriable = True
