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
