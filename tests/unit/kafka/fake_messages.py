"""A stand-in for confluent-kafka's Message (C type, not constructible from Python), for
unit tests, fuzzing and the per-record benchmark."""

from __future__ import annotations


class Msg:
    """The confluent-kafka Message methods the source reads (`timestamp()` is
    `(type, ms)`: 0 not available, 1 CREATE_TIME, 2 LOG_APPEND_TIME)."""

    def __init__(self, offset: int, value: bytes | None = b'{"type": "order", "amount": 12}',
                 key: bytes | None = b"k1", topic: str = "orders", partition: int = 2,
                 timestamp: int | None = 1_545_084_650_987, timestamp_type: int = 1,
                 headers: list[tuple[str, bytes | None]] | None = None,
                 leader_epoch: int | None = 0) -> None:
        self._offset, self._value, self._key = offset, value, key
        self._topic, self._partition = topic, partition
        self._timestamp = (timestamp_type, -1 if timestamp is None else timestamp)
        self._headers = headers or None  # librdkafka: None when there are none
        self._epoch = leader_epoch

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def leader_epoch(self) -> int | None:
        return self._epoch

    def error(self) -> None:
        return None
