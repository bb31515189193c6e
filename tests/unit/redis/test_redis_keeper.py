"""The pending keeper resets the idle time of held entries, and only theirs (fakeredis)."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest
import redis

from connectors.redis.keeper import PendingKeeper

STREAM, GROUP = "s", "g"


@pytest.fixture
def client() -> redis.Redis:
    c = fakeredis.FakeRedis(decode_responses=True)
    c.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    return c


def read(client: redis.Redis, consumer: str, count: int) -> list[str]:
    reply = client.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count)
    return [entry_id for _, entries in reply for entry_id, _ in entries]


def idle_ms(client: redis.Redis) -> dict[str, int]:
    return {p["message_id"]: p["time_since_delivered"]
            for p in client.xpending_range(STREAM, GROUP, "-", "+", 100)}


def test_held_entries_idle_for_half_the_timeout_are_claimed_again(client: redis.Redis) -> None:
    # Given 4 entries read by this consumer: 2 still held, 1 acked, 1 released (pending,
    # no longer held); a 0.2 s visibility timeout
    for n in range(4):
        client.xadd(STREAM, {"n": str(n)})
    held_ids, acked, released = (ids := read(client, "me", 4))[:2], ids[2], ids[3]
    client.xack(STREAM, GROUP, acked)
    keeper = PendingKeeper(client, GROUP, "me", 0.2, {STREAM: set(held_ids)})
    # When half the timeout passes and the keeper looks
    time.sleep(0.12)
    # Then the held entries' idle time is reset, the released one keeps going idle
    assert keeper.keep() == 2
    idle = idle_ms(client)
    assert all(idle[i] < 50 for i in held_ids), idle
    assert idle[released] >= 100 and acked not in idle
    # And the delivery counter is untouched (JUSTID)
    counts = {p["message_id"]: p["times_delivered"]
              for p in client.xpending_range(STREAM, GROUP, "-", "+", 100)}
    assert counts == {held_ids[0]: 1, held_ids[1]: 1, released: 1}


def test_entries_not_yet_idle_half_the_timeout_are_left_alone(client: redis.Redis) -> None:
    client.xadd(STREAM, {"n": "0"})
    keeper = PendingKeeper(client, GROUP, "me", 10, {STREAM: set(read(client, "me", 1))})
    assert keeper.keep() == 0


def test_an_entry_another_consumer_just_claimed_is_not_taken_back(client: redis.Redis) -> None:
    # Given an entry this consumer held too long, which another consumer has just claimed
    client.xadd(STREAM, {"n": "0"})
    [entry] = read(client, "me", 1)
    time.sleep(0.12)
    client.xclaim(STREAM, GROUP, "other", 100, [entry])
    keeper = PendingKeeper(client, GROUP, "me", 0.2, {STREAM: {entry}})
    # When the keeper looks / Then the entry stays with the other consumer
    assert keeper.keep() == 0
    [pending] = client.xpending_range(STREAM, GROUP, "-", "+", 10)
    assert pending["consumer"] == "other"


def test_the_keeper_thread_keeps_entries_from_going_idle_until_closed(
        client: redis.Redis) -> None:
    # Given a held entry and a 0.4 s timeout (the keeper looks every 0.1 s)
    client.xadd(STREAM, {"n": "0"})
    [entry] = read(client, "me", 1)
    keeper = PendingKeeper(client, GROUP, "me", 0.4, {STREAM: {entry}})
    keeper.start("test-keeper")
    # When twice the timeout passes / Then the entry never went idle past half of it
    deadline, worst = time.monotonic() + 0.8, 0
    while time.monotonic() < deadline:
        worst = max(worst, idle_ms(client)[entry])
        time.sleep(0.02)
    keeper.close()
    assert worst < 400 and keeper.claimed >= 2
    # And after close() it goes idle past anything a live keeper allows (about 300 ms)
    threading.Event().wait(0.6)
    assert idle_ms(client)[entry] >= 550
