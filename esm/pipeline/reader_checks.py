"""The reader's informative checks: the visibility-timeout warning at open and the lag it
reports. Neither may stop reading: they log and return."""

from __future__ import annotations

import logging

from esm.config.types import MappingConfig
from esm.interfaces import Source
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


def total_lag(mapping: MappingConfig, source: Source) -> float | None:
    """The source's lag summed over its lanes; None when unknown or unavailable."""
    try:
        lag = source.lag()
        return float(sum(lag.values())) if lag else None
    except Exception as exc:  # lag is informative; a failure here must not stop reading
        log.debug("mapping %s: lag unavailable: %s", mapping.name, exc)
        return None
