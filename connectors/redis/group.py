"""A Redis Streams source's consumer group: joined on open, left on close when idle.

- The group is created with MKSTREAM when missing, at `0` for TRIM_HORIZON and `$` for
  LATEST; an existing group keeps its position, as a Kafka group does (ESM-SPEC §1.2).
- Consumer names are per process, so they would pile up in the group: a consumer is
  removed on close unless it still holds pending entries, which others must reclaim.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from connectors.redis.entries import text

log = logging.getLogger("connectors.redis.source")


def create_groups(client: redis.Redis, streams: Sequence[str], group: str,
                  starting_position: str) -> None:
    start = "0" if starting_position == "TRIM_HORIZON" else "$"
    for stream in streams:
        try:
            client.xgroup_create(stream, group, id=start, mkstream=True)
            log.info("redis_streams: created group %s on %s at %s", group, stream, start)
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise  # an existing group keeps its position


def forget_consumer_if_idle(client: redis.Redis, stream: str, group: str,
                            consumer: str) -> None:
    for member in client.xinfo_consumers(stream, group):
        if text(member.get("name")) == consumer and not member.get("pending"):
            client.xgroup_delconsumer(stream, group, consumer)
