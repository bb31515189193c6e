"""The Kinesis Data Streams adapter of the shard model (`shards.StreamApi`) on boto3."""

from __future__ import annotations

from typing import Any

from connectors.shards.model import (
    AT_TIMESTAMP,
    LATEST,
    TRIM_HORIZON,
    Page,
    ShardInfo,
    aws_call,
    is_sequence,
)

MAX_LIMIT = 10000  # GetRecords Limit maximum for Kinesis


class KinesisApi:
    """StreamApi over the boto3 `kinesis` client; the stream is named by ARN or by name."""

    def __init__(self, client: Any, stream_arn: str, stream_name: str | None) -> None:
        self.client = client
        self.stream_arn = stream_arn
        # By name even when configured by ARN: emulators (moto) lose the stream in iterators
        # made from an ARN; the name names the same stream in the caller's account.
        self._stream = {"StreamName": stream_name or stream_arn.split(":stream/", 1)[1]}

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        params: dict[str, Any] = dict(self._stream)
        while True:
            answer = aws_call(self.client.list_shards, f"ListShards on {self.stream_arn}",
                              **params)
            for shard in answer.get("Shards", []):
                parents = tuple(p for p in (shard.get("ParentShardId"),
                                            shard.get("AdjacentParentShardId")) if p)
                shards.append(ShardInfo(
                    shard["ShardId"], parents,
                    shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")))
            token = answer.get("NextToken")
            if not token:
                return shards
            params = {"NextToken": token}  # ListShards rejects the stream with a token

    def iterator(self, shard_id: str, checkpoint: str) -> str:
        params: dict[str, Any] = {**self._stream, "ShardId": shard_id}
        if is_sequence(checkpoint):
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                          StartingSequenceNumber=checkpoint)
        elif checkpoint.startswith(AT_TIMESTAMP):
            params.update(ShardIteratorType=AT_TIMESTAMP,
                          Timestamp=float(checkpoint.partition(":")[2]))
        else:
            params["ShardIteratorType"] = LATEST if checkpoint == LATEST else TRIM_HORIZON
        return str(aws_call(self.client.get_shard_iterator, "GetShardIterator",
                            **params)["ShardIterator"])

    def read(self, iterator: str, limit: int) -> Page:
        """Throttling (the shard's shared read limit) raises `Throttled`, which the reader
        counts as an empty read."""
        answer = aws_call(self.client.get_records, "GetRecords", ShardIterator=iterator,
                          Limit=min(limit, MAX_LIMIT))
        return Page(answer.get("Records", []), answer.get("NextShardIterator"),
                    answer.get("MillisBehindLatest"))

    def sequence_of(self, raw: dict[str, Any]) -> str:
        return str(raw["SequenceNumber"])
