"""Failed attempts per pending entry, kept in Redis so that `max_deliveries` counts what
failed at the target, not what the broker delivered.

Why: Redis raises an entry's delivery counter on every XREADGROUP and XAUTOCLAIM. A replica
killed with entries read ahead (read, never invoked) leaves them pending; each reclaim after
a crash raises their counter again, so a few crashes in a row turned healthy entries into
`MaxDeliveriesExceeded` dead letters that no target had ever seen. esm therefore counts
itself: one hash per stream and group (`failed_attempts_key`), entry id → failed attempts,
incremented when the core releases an entry after a failed delivery, deleted when the entry
is acked. A reclaimed entry's attempt is `failed attempts + 1`.

Redis's own counter stays a safety bound (`crash_loop_bound`): an entry delivered that many
times without a counted failure is one that takes the daemon down with it every time (a
crash loop), and it goes to the on-failure destination rather than round forever.

A count lost with a crash (the HINCRBY not sent) errs towards one more delivery, never
towards a dead letter. Fields of entries trimmed from the stream while pending are deleted
when XAUTOCLAIM reports them gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# Redis deliveries, as a multiple of max_deliveries, after which an entry that never failed
# at the target is dead-lettered anyway (see the module docstring).
CRASH_LOOP_FACTOR = 10


def failed_attempts_key(group: str, stream: str) -> str:
    """The hash holding failed attempts of `stream`'s entries pending in `group`."""
    return f"esm:failed-attempts:{group}:{stream}"


def crash_loop_bound(max_deliveries: int | None) -> int | None:
    """Redis deliveries after which an entry is dead-lettered whatever its failed attempts
    (None: no max_deliveries, the entry is never dead-lettered by count)."""
    if max_deliveries is None:
        return None
    return max_deliveries * CRASH_LOOP_FACTOR


def attempt_number(failed: Any, times_delivered: int, max_deliveries: int | None) -> int:
    """The delivery attempt this is, as the core counts it against `max_deliveries`:
    1 + the failed attempts recorded (`failed`: the hash's raw value or None), or, past the
    crash-loop bound, Redis's delivery counter (which is then over max_deliveries)."""
    attempt = 1 + (int(failed) if failed is not None else 0)
    bound = crash_loop_bound(max_deliveries)
    if bound is not None and times_delivered > bound:
        return max(attempt, times_delivered)
    return attempt


def increment_commands(group: str, stream: str, ids: Iterable[str]) -> list[tuple[Any, ...]]:
    """HINCRBY commands that count one more failed attempt for each of `ids`."""
    key = failed_attempts_key(group, stream)
    return [("HINCRBY", key, entry_id, 1) for entry_id in ids]


def forget_command(group: str, stream: str, ids: Sequence[str]) -> tuple[Any, ...] | None:
    """HDEL of `ids` (finished entries); None when there is nothing to delete."""
    if not ids:
        return None
    return ("HDEL", failed_attempts_key(group, stream), *ids)
