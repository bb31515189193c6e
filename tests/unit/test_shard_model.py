"""Shard model rules without a server: where new shards start, config checks, the example
configs, and the Kinesis filter view."""

from __future__ import annotations

from pathlib import Path

from connectors.sources.dynamodb_streams import DynamoDBStreamsSettings, DynamoDBStreamsSource
from connectors.sources.kinesis import decode_data
from connectors.sources.shards import SHARD_END, TRIM_HORIZON, ShardInfo, iso_utc
from connectors.sources.shards_leases import Lease
from connectors.sources.shards_reader import ShardReader
from esm.config import load_config

ROOT = Path(__file__).resolve().parents[2]
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"


def reader(start: str) -> ShardReader:
    reader = ShardReader.__new__(ShardReader)
    reader.starting_checkpoint = start
    return reader


def test_child_of_a_known_shard_starts_at_trim_horizon_even_with_latest():
    # Given a parent that has a lease row / When its child is first seen / Then no loss
    existing = {"p": Lease("p", None, 0, SHARD_END)}
    assert reader("LATEST").new_checkpoint(ShardInfo("c", ("p",)), existing, {}) == TRIM_HORIZON


def test_latest_skips_closed_shards_and_starts_open_leaves_at_latest():
    # Given a first discovery with a closed parent and its open child under LATEST
    r, fresh = reader("LATEST"), {}
    fresh["p"] = r.new_checkpoint(ShardInfo("p", (), "99"), {}, fresh)
    # When the child is placed / Then the parent is skipped and the child starts at LATEST
    assert fresh["p"] == SHARD_END
    assert r.new_checkpoint(ShardInfo("c", ("p",)), {}, fresh) == "LATEST"


def test_dynamodb_rejects_at_timestamp_with_the_aws_message():
    settings = DynamoDBStreamsSettings(stream_arn=ARN, starting_position="AT_TIMESTAMP")
    assert DynamoDBStreamsSource.check_mapping(settings, {}) == [
        f"source.starting_position: Unsupported starting position for arn type: {ARN}"]


def test_kinesis_filter_view_decodes_json_else_keeps_text():
    assert decode_data(b'{"a": 1}') == {"a": 1}
    assert decode_data(b"plain") == "plain"
    assert decode_data(b"\xff\xfe") == "//4="


def test_notice_timestamps_have_millis_for_kinesis_and_none_for_dynamodb():
    assert iso_utc(1573692486.021, True) == "2019-11-14T00:48:06.021Z"
    assert iso_utc(1573692486.021, False) == "2019-11-14T00:48:06Z"


def test_example_configs_load():
    env = {"ORDERS_STREAM_ARN": ARN, "DLQ_BUCKET": "my-dlq"}
    ddb = load_config([str(ROOT / "config" / "dynamodb_streams_replicated.yaml")], env)
    kin = load_config([str(ROOT / "config" / "kinesis.yaml")], {})
    assert ddb.mappings[0].source.settings.checkpoint.type == "dynamodb"
    assert kin.mappings[0].source.settings.starting_position == "LATEST"
