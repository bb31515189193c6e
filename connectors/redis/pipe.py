"""One Redis connection used as a pipeline: commands are sent at once and their replies read
later, in order, so the reader thread does not wait a round trip per command.

Why: with the reader and the lane worker sharing one GIL, every round trip the reader
waits for is time nobody works. An XACK per settled batch, and an XREADGROUP whose reply
Redis builds while the reader is still ingesting the previous one, were the largest of
those waits (tests/bench/bench_redis.py). Redis runs the commands as they arrive; only
reading their replies is deferred.

Failure: a reply that is an error (NOGROUP...) is raised by `collect` once every reply
sent before it has been read, so the pipe stays in step. A broken connection drops the
pipe's replies and raises: entries whose XACK was lost stay pending and are delivered
again after the visibility timeout (at least once, nothing lost).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis

OnReply = Callable[[Any], None]


class RedisPipe:
    """Send now, read later, on a connection of its own (reader thread only), made like the
    client's. `decode_text`: replies come as str, decoded by the parser (hiredis: in C);
    bytes that are not UTF-8 come as lone surrogates (surrogateescape), which orjson
    refuses to encode, so a caller can tell them apart and fall back to bytes."""

    def __init__(self, client: redis.Redis, *, decode_text: bool = False) -> None:
        self._pool = client.connection_pool
        self._options = dict(self._pool.connection_kwargs)
        if decode_text:
            self._options.update(decode_responses=True, encoding="utf-8",
                                 encoding_errors="surrogateescape")
        self._conn: Any = None
        self._waiting: deque[OnReply | None] = deque()  # one per reply not read yet

    def __len__(self) -> int:
        return len(self._waiting)

    def owes(self, on_reply: OnReply) -> bool:
        """True while a command sent with this callback has not had its reply read (a
        broken connection drops what it owed)."""
        return on_reply in self._waiting

    def send(self, on_reply: OnReply | None, *args: Any) -> None:
        """Send one command; `on_reply` gets its reply when `collect` reads it."""
        self._send_packed(on_reply, self._connection().pack_command(*args))

    def send_with_ids(self, on_reply: OnReply | None, head: Sequence[str],
                      ids: Sequence[str]) -> None:
        """`send(on_reply, *head, *ids)` for many entry ids (XACK), packed here: redis-py
        encodes each argument in a Python call, ~0.5 us an id, and an XACK of every batch
        was a tenth of the reader's time in bench_redis. Ids are Redis entry ids (ASCII);
        anything else goes through `send`."""
        tail = "".join([f"${len(i)}\r\n{i}\r\n" for i in ids])
        if not tail.isascii():
            self.send(on_reply, *head, *ids)
            return
        words = "".join([f"${len(w.encode())}\r\n{w}\r\n" for w in head])
        self._send_packed(on_reply, [f"*{len(head) + len(ids)}\r\n{words}{tail}".encode()])

    def _send_packed(self, on_reply: OnReply | None, command: list[bytes]) -> None:
        conn = self._connection()
        try:
            # No health check: its PING would read one of the replies still waiting here.
            conn.send_packed_command(command, check_health=False)
        except BaseException:
            self._drop()
            raise
        self._waiting.append(on_reply)

    def collect(self, wait: bool = True) -> None:
        """Read every reply sent for, in order, handing each to its callback; with `wait`
        False, only those that have arrived (the rest stay owed)."""
        first_error: redis.ResponseError | None = None
        while self._waiting and (wait or self._arrived()):
            on_reply = self._waiting[0]
            try:
                reply = self._conn.read_response(disconnect_on_error=False)
            except redis.ResponseError as exc:  # an error reply: the pipe is still in step
                self._waiting.popleft()
                first_error = first_error or exc
                continue
            except BaseException:
                self._drop()
                raise
            self._waiting.popleft()
            if on_reply is not None:
                on_reply(reply)
        if first_error is not None:
            raise first_error

    def _arrived(self) -> bool:
        try:
            return bool(self._conn.can_read(timeout=0))
        except BaseException:
            self._drop()
            raise

    def close(self) -> None:
        """Read what is still owed (so acks are confirmed), then disconnect."""
        try:
            self.collect()
        finally:
            self._disconnect()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._pool.connection_class(**self._options)
        return self._conn

    def _drop(self) -> None:
        """The connection broke: its replies are gone; the next send connects afresh."""
        self._waiting.clear()
        self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None
