"""RedisPipe: commands sent at once, replies read later in order; errors keep it in step."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis

from connectors.redis.pipe import RedisPipe


def test_replies_are_read_later_in_the_order_sent() -> None:
    client = fakeredis.FakeRedis()
    pipe = RedisPipe(client)
    got: list[Any] = []
    pipe.send(got.append, "SET", "k", "1")
    pipe.send(None, "INCR", "k")
    pipe.send(got.append, "GET", "k")
    assert pipe.owes(got.append) and not pipe.owes(print)
    # Then Redis ran them as sent, before any reply was read
    assert client.get("k") == b"2"
    assert len(pipe) == 3 and got == []
    pipe.collect()
    assert got == [b"OK", b"2"] and len(pipe) == 0


def test_an_error_reply_is_raised_after_every_reply_before_it_is_read() -> None:
    client = fakeredis.FakeRedis()
    client.set("text", "x")
    pipe = RedisPipe(client)
    got: list[Any] = []
    pipe.send(got.append, "INCR", "n")
    pipe.send(got.append, "INCR", "text")  # an error reply
    pipe.send(got.append, "INCR", "n")
    with pytest.raises(redis.ResponseError):
        pipe.collect()
    # The replies around the error were still read and handed over: the pipe is in step
    assert got == [1, 2] and len(pipe) == 0
    pipe.send(got.append, "GET", "n")
    pipe.collect()
    assert got[-1] == b"2"


def test_a_broken_connection_drops_what_is_owed_and_reconnects_on_the_next_send() -> None:
    client = fakeredis.FakeRedis()
    pipe = RedisPipe(client)
    owed: list[Any] = []
    pipe.send(owed.append, "SET", "k", "1")
    assert pipe.owes(owed.append)
    conn = pipe._conn

    def broken(**_: Any) -> Any:
        raise redis.ConnectionError("gone")

    conn.read_response = broken
    with pytest.raises(redis.ConnectionError):
        pipe.collect()
    assert len(pipe) == 0 and pipe._conn is None
    assert not pipe.owes(owed.append)  # nothing is owed any more: a caller may send again
    del conn.read_response
    got: list[Any] = []
    pipe.send(got.append, "GET", "k")
    pipe.collect()
    assert got == [b"1"]


def test_close_reads_what_is_owed_and_gives_the_connection_back() -> None:
    client = fakeredis.FakeRedis()
    pipe = RedisPipe(client)
    got: list[Any] = []
    pipe.send(got.append, "PING")
    pipe.close()
    assert got == [b"PONG"] and pipe._conn is None


@pytest.mark.parametrize("stream", ["orders", "commandes-été"])
def test_ids_packed_by_the_pipe_reach_redis_as_the_command_redis_py_would_send(
        stream: str) -> None:
    # Given entries read through a group (a stream name that is not ASCII too)
    client = fakeredis.FakeRedis()
    ids = [client.xadd(stream, {"n": str(n)}).decode() for n in range(30)]
    client.xgroup_create(stream, "g", id="0")
    client.xreadgroup("g", "c", {stream: ">"})
    pipe = RedisPipe(client)
    sent: list[Any] = []
    conn = pipe._connection()
    conn.send_packed_command = lambda command, check_health=True: sent.append(command)
    # When the pipe packs an XACK of them itself
    pipe.send_with_ids(None, ("XACK", stream, "g"), ids[:20])
    # Then the bytes are redis-py's packing of the same command
    expected = b"".join(conn.pack_command("XACK", stream, "g", *ids[:20]))
    assert [b"".join(c) for c in sent] == [expected]
    del conn.send_packed_command
    pipe._waiting.clear()
    got: list[Any] = []
    pipe.send_with_ids(got.append, ("XACK", stream, "g"), ids[:20])
    pipe.collect()
    assert got == [20] and client.xpending(stream, "g")["pending"] == 10


def test_ids_that_are_not_ascii_go_through_redis_py() -> None:
    client = fakeredis.FakeRedis()
    pipe = RedisPipe(client)
    got: list[Any] = []
    pipe.send_with_ids(got.append, ("SADD", "s"), ["é", "a"])
    pipe.collect()
    assert got == [2] and client.smembers("s") == {"é".encode(), b"a"}
