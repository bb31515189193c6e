"""`esm run` against a real redis-server (issue #3): kill -9 twice mid-stream, restart,
and count what the handler saw.

What "nothing lost" means here: every entry was processed successfully at least once, and
the group has nothing left (XPENDING empty, XINFO GROUPS lag 0), so every entry was XACKed.

The duplicate bound asserted: a successful processing is repeated only when the daemon was
killed after the handler finished the batch and before the XACK. The reader runs one batch
per lane at a time and acks before the lane takes the next batch, so at a kill at most
`batch_size` records per lane (stream) are in that state. Hence
    successful deliveries - records <= batch_size * streams * kills.
Failed deliveries (records named in batchItemFailures) are redelivered by design and are
not counted as duplicates; they never XACK, so they cannot hide a loss either.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.e2e_support import (
    DaemonProcess,
    Journal,
    daemon_env,
    kill_at_progress,
    python_target,
    run_until_settled,
    wait_until,
    write_config,
)
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration

RECORDS = 10_000
STREAMS = 3
BATCH_SIZE = 10
KILLS_AT = (0.3, 0.6)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def produce(client: redis.Redis, streams: list[str], count: int,
            poison: frozenset[str] = frozenset()) -> list[str]:
    """`count` entries round-robin over `streams`, body {"id", "group", "seq"}; their ids."""
    ids = [f"r{n}" for n in range(count)]
    pipe = client.pipeline(transaction=False)
    for n, record_id in enumerate(ids):
        stream = streams[n % len(streams)]
        body = {"id": record_id, "group": stream, "seq": n, "poison": record_id in poison}
        pipe.xadd(stream, {"body": json.dumps(body)})
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return ids


def redis_mapping(url: str, streams: list[str], group: str, dlq: str, *,
                  max_deliveries: int, visibility_timeout_seconds: int) -> dict[str, Any]:
    return {
        "name": "e2e-redis",
        "source": {"type": "redis_streams", "url": url, "streams": streams,
                   "consumer_group": group, "visibility_timeout_seconds":
                   visibility_timeout_seconds, "max_deliveries": max_deliveries,
                   "block_milliseconds": 200},
        "batch_size": BATCH_SIZE,
        "function_response_types": ["ReportBatchItemFailures"],
        "scaling_config": {"maximum_concurrency": STREAMS},
        "target": python_target(timeout_seconds=visibility_timeout_seconds),
        "destination_config": {"on_failure": {"type": "redis_stream", "url": url,
                                              "stream": dlq}},
    }


def group_state(client: redis.Redis, streams: list[str], group: str) -> dict[str, tuple[int, int]]:
    """{stream: (pending, lag)} of the consumer group, from XINFO GROUPS."""
    state = {}
    for stream in streams:
        [info] = [g for g in client.xinfo_groups(stream) if g["name"] == group]
        state[stream] = (int(info["pending"]), int(info["lag"] if info["lag"] is not None else -1))
    return state


def settled(client: redis.Redis, streams: list[str], group: str) -> bool:
    return all(s == (0, 0) for s in group_state(client, streams, group).values())


def test_kill_9_twice_mid_stream_loses_nothing_and_bounds_duplicates(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis) -> None:  # noqa: F811
    # Given 10,000 entries over 3 streams and a target that reports ~20% of batches as
    # partial failures (about 2.2% of records, on their first two deliveries)
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    streams, group, dlq = [f"{prefix}-{i}" for i in range(STREAMS)], f"{prefix}-g", f"{prefix}-dlq"
    ids = produce(client, streams, RECORDS)
    config = write_config(tmp_path, [redis_mapping(redis_server.url, streams, group, dlq,
                                                   max_deliveries=10,
                                                   visibility_timeout_seconds=2)])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.02", fail_per_mille="22",
                     fail_below_delivery="3")
    log = tmp_path / "daemon.log"
    # When the daemon is killed with SIGKILL at ~30% and ~60% and restarted each time
    progress_at_kill = kill_at_progress(config, env, log, journal,
                                        [int(f * RECORDS) for f in KILLS_AT])
    run_until_settled(config, env, log, journal, ids, lambda: settled(client, streams, group),
                      lambda: f"group not settled: {group_state(client, streams, group)}")
    # Then every entry was processed and acked, none dead-lettered, duplicates bounded
    ok, failed = Counter(journal.ok_ids()), journal.lines("fail")
    reclaimed = journal.redelivered_unfailed()  # held by a killed daemon, back via XAUTOCLAIM
    duplicates, bound = sum(ok.values()) - RECORDS, BATCH_SIZE * STREAMS * len(KILLS_AT)
    print(f"\nredis e2e: {RECORDS} records, kills at {progress_at_kill} processed, "
          f"{len(failed)} failed deliveries, {len(reclaimed)} reclaimed after a kill, "
          f"{duplicates} duplicate successes (bound {bound}), "
          f"{len(journal.lines('start'))} invocations")
    assert all(0 < p < RECORDS for p in progress_at_kill), "a kill came after the end"
    assert set(ok) == set(ids)
    assert all(client.xpending(s, group)["pending"] == 0 for s in streams)
    assert group_state(client, streams, group) == dict.fromkeys(streams, (0, 0))
    assert client.xlen(dlq) == 0, "no ordinary record may reach max_deliveries"
    assert 0.1 * RECORDS / BATCH_SIZE < len(failed) < 0.05 * RECORDS  # failures did happen
    assert reclaimed, "the kills left no pending entry behind: they were not mid-stream"
    assert duplicates <= bound, [(i, n) for i, n in ok.items() if n > 1][:20]


def test_poison_entry_goes_to_the_redis_stream_destination_after_max_deliveries(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis) -> None:  # noqa: F811
    # Given 20 entries on one stream, one of which always fails, and max_deliveries 2
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    stream, group, dlq = f"{prefix}-s", f"{prefix}-g", f"{prefix}-dlq"
    ids = produce(client, [stream], 20, poison=frozenset({"r7"}))
    poison_entry = client.xrange(stream)[7]
    config = write_config(tmp_path, [redis_mapping(redis_server.url, [stream], group, dlq,
                                                   max_deliveries=2,
                                                   visibility_timeout_seconds=1)])
    journal = Journal(tmp_path / "journal.jsonl")
    # When the daemon runs until the group is settled
    metrics = run_until_settled(
        config, daemon_env(journal.path), tmp_path / "daemon.log", journal,
        [i for i in ids if i != "r7"],
        lambda: client.xlen(dlq) >= 1 and settled(client, [stream], group),
        lambda: f"dlq={client.xlen(dlq)} group={group_state(client, [stream], group)}", 60)
    # Then the 19 others were processed, the poison one was tried twice, then one notice
    # holding it was written and the entry acked
    assert sorted(journal.ok_ids()) == sorted(i for i in ids if i != "r7")
    assert [line["delivery"] for line in journal.lines("fail")] == [1, 2]
    [(_, fields)] = client.xrange(dlq)
    notice = json.loads(fields["body"])
    assert fields["condition"] == notice["requestContext"]["condition"] == "MaxDeliveriesExceeded"
    [payload_record] = notice["payload"]["Records"]
    assert payload_record["messageId"] == poison_entry[0]
    assert payload_record["stream"] == stream
    assert json.loads(payload_record["body"])["id"] == "r7"
    info = notice["RedisStreamBatchInfo"]
    assert (info["stream"], info["consumerGroup"], info["batchSize"]) == (stream, group, 1)
    assert info["startMessageId"] == info["endMessageId"] == poison_entry[0]
    label = "{mapping=e2e-redis}"
    assert metrics[f"esm_on_failure_destination_delivered_events_total{label}"] == 1


def test_sigterm_mid_stream_then_restart_processes_each_entry_exactly_once(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis) -> None:  # noqa: F811
    # Given 2,000 entries over 2 streams and a target with occasional partial failures
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    streams, group, dlq = [f"{prefix}-{i}" for i in range(2)], f"{prefix}-g", f"{prefix}-dlq"
    ids = produce(client, streams, 2000)
    config = write_config(tmp_path, [redis_mapping(redis_server.url, streams, group, dlq,
                                                   max_deliveries=10,
                                                   visibility_timeout_seconds=2)])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.02", fail_per_mille="22")
    log = tmp_path / "daemon.log"
    # When the daemon gets SIGTERM at ~50% (drain: in-flight batches finish and are acked)
    # and is started again
    [at_stop] = kill_at_progress(config, env, log, journal, [1000], graceful=True)
    run_until_settled(config, env, log, journal, ids, lambda: settled(client, streams, group),
                      lambda: f"group not settled: {group_state(client, streams, group)}")
    # Then no entry was processed successfully twice, and all were acked
    print(f"\nredis graceful restart: stopped at {at_stop}, "
          f"{len(journal.lines('fail'))} failed deliveries")
    assert 0 < at_stop < len(ids)
    assert (journal.processed(), journal.duplicated()) == (len(ids), [])
    assert settled(client, streams, group) and client.xlen(dlq) == 0


def test_key_slots_run_one_stream_concurrently_in_order_per_key(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis) -> None:  # noqa: F811
    # Given one stream of 1,500 entries whose `user` field (11 values) is the ordering key,
    # parallelization_factor 5, and a target that fails some records on first delivery
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    stream, group, dlq = f"{prefix}-0", f"{prefix}-g", f"{prefix}-dlq"
    pipe = client.pipeline(transaction=False)
    for n in range(1500):
        user = f"u{n % 11}"
        pipe.xadd(stream, {"body": json.dumps({"id": f"r{n}", "group": user, "seq": n}),
                           "user": user})
    pipe.execute()
    mapping = redis_mapping(redis_server.url, [stream], group, dlq, max_deliveries=10,
                            visibility_timeout_seconds=2)
    mapping["source"]["ordering_key_field"] = "user"
    mapping.update(parallelization_factor=5, scaling_config={"maximum_concurrency": 5})
    config = write_config(tmp_path, [mapping])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.02", fail_per_mille="20",
                     fail_below_delivery="2")
    # When the daemon runs until the group is settled
    run_until_settled(config, env, tmp_path / "daemon.log", journal,
                      [f"r{n}" for n in range(1500)], lambda: settled(client, [stream], group),
                      lambda: f"group not settled: {group_state(client, [stream], group)}")
    # Then each user's entries were first delivered in stream order, several batches of
    # the one stream ran at once, and every entry was processed and acked
    first: dict[str, list[int]] = {}
    seen: set[str] = set()
    for line in journal.lines():
        if line["kind"] in ("ok", "fail") and line["id"] not in seen:
            seen.add(line["id"])
            first.setdefault(line["group"], []).append(line["seq"])
    assert len(seen) == 1500 and len(first) == 11
    assert all(seqs == sorted(seqs) for seqs in first.values())
    assert max(line["concurrent"] for line in journal.lines("start")) > 1
    assert journal.lines("fail"), "no failure: redelivery unproven"
    assert group_state(client, [stream], group) == {stream: (0, 0)}


def test_entries_waiting_for_a_busy_target_never_reach_a_second_replica(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis) -> None:  # noqa: F811
    # Given two replicas on one stream, a 2 s visibility timeout and batches that take 1 s:
    # entries a replica reads ahead wait longer than the timeout for its target
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    streams, group, dlq = [prefix], f"{prefix}-g", f"{prefix}-dlq"
    ids = produce(client, streams, 200)
    mapping = redis_mapping(redis_server.url, streams, group, dlq, max_deliveries=10,
                            visibility_timeout_seconds=2)
    configs = [write_config(tmp_path, [mapping], name=f"esm-{n}.yaml") for n in range(2)]
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="1")
    log = tmp_path / "daemon.log"
    # When both work through the stream
    with DaemonProcess(configs[0], env, log) as first, DaemonProcess(configs[1], env, log):
        first.wait_ready()
        wait_until(lambda: journal.processed() == len(ids) and settled(client, streams, group),
                   120, lambda: f"{journal.processed()} processed, group "
                                f"{group_state(client, streams, group)}")
    # Then each entry was invoked once: no replica reclaimed what the other still held
    # (with `extend_visibility: false` this run invoked the 200 entries 380 times)
    invoked = Counter(line["id"] for line in journal.lines() if "id" in line)
    print(f"\nredis busy target, 2 replicas: {sum(invoked.values())} invocations of "
          f"{len(ids)} entries")
    assert {i: n for i, n in invoked.items() if n > 1} == {}
