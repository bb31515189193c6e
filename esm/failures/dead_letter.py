"""Dead-lettering: write a notice for discarded records to the on-failure destination,
durably, before they are acked (DESIGN §7, ESM-SPEC §4.3–4.5).

If the write fails the lane waits and tries again, with backoff, until it succeeds or the
daemon stops; nothing is acked past a notice that is not durable. Without a destination
the records are dropped, as AWS does, and counted in esm_dropped_events_total.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid

from esm.config.types import MappingConfig, RetryBackoff
from esm.failures.backoff import retry_delay
from esm.failures.notices import build_notice
from esm.interfaces import Clock, Destination, Source
from esm.ops import status as st
from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus
from esm.records import DeadLetter

log = logging.getLogger(__name__)

_WRITE_BACKOFF = RetryBackoff(initial_seconds=0.5, maximum_seconds=30.0)


class DeadLetterer:
    """Builds notices and makes them durable; one per mapping, shared by lane workers."""

    def __init__(self, *, mapping: MappingConfig, source: Source, destination: Destination | None,
                 function_arn: str, metrics: MappingMetrics, status: MappingStatus,
                 clock: Clock, stop: threading.Event, rng: random.Random | None = None) -> None:
        self.mapping = mapping
        self.source = source
        self.destination = destination
        self.function_arn = function_arn
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.stop = stop
        self.rng = rng or random.Random()

    def send(self, step: DeadLetter, lane: str) -> bool:
        """True once the records may be acked; False if the daemon stopped first."""
        records = step.records
        if self.destination is None:
            log.warning("mapping %s lane %s: dropping %d record(s) (%s): no on-failure "
                        "destination configured", self.mapping.name, lane, len(records),
                        step.condition)
            self.metrics.count("dropped", len(records))
            return True
        notice = self._notice(step)
        return self._write(notice, step, lane)

    def _notice(self, step: DeadLetter) -> dict[str, object]:
        records = list(step.records)
        include = self.mapping.include_payload
        return build_notice(
            mapping=self.mapping.name, function_arn=self.function_arn,
            condition=step.condition, outcome=step.outcome, invoke_count=step.invoke_count,
            batch_info_key=self.source.traits.batch_info_key,
            batch_info=self.source.batch_info(records), records=records,
            event_payload=self.source.build_event(records) if include else None,
            include_payload=include, now=self.clock.now(), request_id=str(uuid.uuid4()),
        )

    def _write(self, notice: dict[str, object], step: DeadLetter, lane: str) -> bool:
        assert self.destination is not None
        failures = 0
        while True:
            try:
                self.destination.send(notice, step.records)
            except Exception as exc:  # any failure to make it durable: wait and retry
                failures += 1
                self.metrics.count("destination_failures")
                self.status.update(last_processing_result=st.DESTINATION_FAILED,
                                   last_error=f"on-failure destination: {exc}"[:500])
                log.error("mapping %s lane %s: on-failure destination write failed (try %d): "
                          "%s", self.mapping.name, lane, failures, exc)
                if self.clock.wait(self.stop, retry_delay(_WRITE_BACKOFF, failures, self.rng)):
                    return False
                continue
            self.metrics.count("destination_delivered", len(step.records))
            log.info("mapping %s lane %s: %d record(s) sent to the on-failure destination (%s)",
                     self.mapping.name, lane, len(step.records), step.condition)
            return True


def default_function_arn(mapping_name: str) -> str:
    """The ARN notices name when the target does not say (python and http targets)."""
    return f"arn:aws:lambda:local:000000000000:function:{mapping_name}"

