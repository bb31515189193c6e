"""The two places where the Kafka source reaches into kafka-python's private state, each
because the public API cannot do the job, each falling back to doing nothing if the private
attribute changed shape (kafka-python 3.0.x is what they were written against).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

log = logging.getLogger(__name__)


def rejoin_pending(consumer: Any) -> bool:
    """Whether the next poll will rejoin the group (kafka-python has no public API for it;
    without one, rebalances are reported after the poll, see connectors.kafka.source)."""
    coordinator = getattr(consumer, "_coordinator", None)
    need_rejoin = getattr(coordinator, "need_rejoin", None)
    try:
        return bool(need_rejoin()) if callable(need_rejoin) else False
    except Exception:  # a private API changed shape: fall back to post-poll reporting
        return False


def drop_parked_fetches(consumer: Any, tps: Collection[Any]) -> int:
    """Forget records kafka-python fetched for these partitions while they were paused.

    kafka-python 3.0 parks such records (KAFKA-7548) and puts them back in line only when
    its in-line slot is None, but an exhausted slot is left in place, not None, so a resumed
    partition can stay parked forever: the fetcher never fetches a partition with parked
    data, and poll never returns it. Parked records were never returned, so the partition's
    position still points at the first of them: once dropped, they are simply fetched
    again. Returns how many partitions had parked data.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    dropped = 0
    for name in ("_paused_partition_records", "_paused_completed_fetches"):
        parked = getattr(fetcher, name, None)
        if not isinstance(parked, dict):
            continue
        for tp in tps:
            item = parked.pop(tp, None)
            if item is None:
                continue
            dropped += 1
            drain = getattr(item, "drain", None)
            if callable(drain):
                drain()
    if dropped:
        log.debug("kafka: dropped parked fetches of %d resumed partition(s)", dropped)
    return dropped
