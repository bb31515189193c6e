"""The reader's side of the circuit breaker (`esm.protection.breaker`): the lane workers
open and close the breaker as invocations fail or reach the function; the reader follows
it at the start of every turn.

While the breaker is open the reader holds its reads (every lane paused at the source,
once a batch is at hand to probe with: with nothing buffered or in flight there would be
no probe), sends at most one batch at a time, and waits in short fixed steps rather than
by batching windows. The mapping shows state `Paused` with the breaker's reason and
`esm_circuit_open` is 1; both return to normal when a probe reaches the function.
Used only from the reader thread.
"""

from __future__ import annotations

from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus
from esm.protection.breaker import Breaker

# How long one reader turn waits for a settlement while the breaker holds the lanes.
HELD_WAIT_SECONDS = 0.05


class TargetGuard:
    """Follows one mapping's breaker (None: no breaker configured, never holds)."""

    def __init__(self, breaker: Breaker | None, metrics: MappingMetrics,
                 status: MappingStatus) -> None:
        self.breaker = breaker
        self.metrics = metrics
        self.status = status
        self.held = False  # the breaker is open and the reader holds its lanes

    def follow(self) -> None:
        """Take up the breaker's state: status, metric and `held` change with it."""
        breaker = self.breaker
        if breaker is None or breaker.is_open == self.held:
            return
        self.held = breaker.is_open
        self.metrics.circuit_open.set(1 if self.held else 0)
        if self.held:
            self.status.update(state="Paused", state_transition_reason=breaker.reason)
        else:
            self.status.update(state="Enabled", state_transition_reason="USER_INITIATED")

    def holds_reads(self, in_flight: int, buffered: int) -> bool:
        """True when the lanes must stay paused: open, and a batch is at hand to probe."""
        return self.held and bool(in_flight or buffered)

    def batches_allowed(self, max_in_flight: int) -> int:
        """Batches the reader may have in flight: one to probe with while open."""
        return 1 if self.held else max_in_flight
