"""The shard model shared by the DynamoDB Streams and Kinesis sources.

A stream is a set of shards; each shard is an ordered log identified by sequence numbers.
Resharding (Kinesis split/merge, DynamoDB's periodic shard rollover) closes a shard and
opens children whose `parent_id` names it. Order across a split holds only if a parent is
read to its end and fully acknowledged before any child is read (ESM-SPEC §5: one iterator
per shard). Each service provides a `StreamApi` adapter; everything else is shared.

Checkpoint values (stored per shard in the lease table):
    "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP:<epoch seconds>"   not started yet
    "<sequence number>"                                          resume after this record
    "SHARD_END"                                                  closed and fully acked
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from connectors.aws.clients import error_code
from esm.errors import SourceUnavailable

SHARD_END = "SHARD_END"
TRIM_HORIZON = "TRIM_HORIZON"
LATEST = "LATEST"
AT_TIMESTAMP = "AT_TIMESTAMP"


class ExpiredIterator(Exception):
    """The shard iterator is older than the service allows (5 min Kinesis, 15 min DynamoDB)."""


class TrimmedData(Exception):
    """The position asked for is older than the stream's retention: the data is gone."""


class ShardGone(Exception):
    """The shard no longer exists (trimmed away after retention)."""


class Throttled(Exception):
    """GetRecords was throttled (the shard's read limit is shared by every consumer): the
    reader counts it as an empty read and tries again at the shard's next poll interval."""


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One shard as the service lists it. `ending_sequence` is set once the shard is closed."""

    shard_id: str
    parent_ids: tuple[str, ...] = ()
    ending_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One GetRecords answer. `next_iterator` None means the shard is closed and read to
    its end. `behind_ms` is Kinesis's MillisBehindLatest (None for DynamoDB)."""

    records: Sequence[dict[str, Any]]
    next_iterator: str | None
    behind_ms: float | None = None


class StreamApi(Protocol):
    """What the shard reader needs from a service; adapters translate library errors into
    ExpiredIterator / TrimmedData / ShardGone / Throttled / esm.errors.SourceUnavailable."""

    stream_arn: str

    def list_shards(self) -> list[ShardInfo]: ...

    def iterator(self, shard_id: str, checkpoint: str) -> str:
        """An iterator that starts after `checkpoint` (a sequence number) or at one of the
        starting positions above."""

    def read(self, iterator: str, limit: int) -> Page: ...

    def sequence_of(self, raw: dict[str, Any]) -> str:
        """The sequence number of a raw record."""


def is_sequence(checkpoint: str | None) -> bool:
    """True when a checkpoint names a record (resume after it), not a starting position."""
    return bool(checkpoint) and checkpoint[0].isdigit()  # type: ignore[index]


def initial_checkpoint(starting_position: str, timestamp: float | None) -> str:
    """The checkpoint a shard starts from before any record of it was acked."""
    if starting_position == AT_TIMESTAMP:
        return f"{AT_TIMESTAMP}:{timestamp or 0.0}"
    return starting_position


def parents_first(shards: Sequence[ShardInfo]) -> list[ShardInfo]:
    """Shards ordered so that every parent comes before its children."""
    by_id = {s.shard_id: s for s in shards}
    ordered: list[ShardInfo] = []
    seen: set[str] = set()

    def visit(info: ShardInfo) -> None:
        if info.shard_id in seen:
            return
        seen.add(info.shard_id)
        for parent in info.parent_ids:
            if parent in by_id:
                visit(by_id[parent])
        ordered.append(info)

    for info in shards:
        visit(info)
    return ordered


def seq_at_or_after(seq: str, other: str) -> bool:
    """Sequence numbers are decimal strings of varying length: compare as integers."""
    return int(seq) >= int(other)


# Error codes that mean "this shard's read limit is used up for now" (Kinesis: 5 reads/s and
# 2 MB/s per shard, shared by every consumer; DynamoDB Streams: LimitExceededException).
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException",
    "ThrottlingException", "Throttling", "RequestLimitExceeded",
})


def aws_call(operation: Any, what: str, **params: Any) -> Any:
    """Run one boto3 call, translating its errors at the boundary (`translate`)."""
    try:
        return operation(**params)
    except Exception as exc:  # ClientError / BotoCoreError
        raise translate(exc, what, shard_call="ShardId" in params,
                        read_call="ShardIterator" in params) from exc


def translate(exc: Exception, what: str, shard_call: bool = False,
              read_call: bool = False) -> Exception:
    """Expired iterators, trimmed positions, missing shards and throttled per-shard calls
    (GetShardIterator, GetRecords) become this module's exceptions, which the reader
    recovers from; everything else SourceUnavailable (the supervisor reconnects with
    backoff). A throttled ListShards/DescribeStream stays SourceUnavailable: there is no
    shard to skip."""
    code = error_code(exc)
    if code == "ExpiredIteratorException":
        return ExpiredIterator(str(exc))
    if code == "TrimmedDataAccessException":
        return TrimmedData(str(exc))
    if code == "ResourceNotFoundException" and shard_call:
        return ShardGone(str(exc))
    if code in THROTTLING_CODES and (shard_call or read_call):
        return Throttled(f"{what}: {code}")
    return SourceUnavailable(f"{what} failed: {code}: {exc}")


def epoch_seconds(value: Any) -> float:
    """boto3 datetimes (or numbers) as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def jsonable(value: Any) -> Any:
    """boto3 answers as JSON values: bytes become base64 text (binary attribute values,
    Kinesis data), datetimes epoch seconds."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.timestamp()
    return value
