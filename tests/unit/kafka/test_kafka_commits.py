"""Asynchronous offset commits coalesce while one is on its way (kafka-python refuses
requests past max_in_flight with NodeNotReadyError, which used to restart the reader)."""

from __future__ import annotations

from typing import Any

from kafka import TopicPartition  # type: ignore[import-untyped]

from connectors.kafka.commits import OffsetCommitter


class Consumer:
    def __init__(self) -> None:
        self.sent: list[dict[TopicPartition, int]] = []
        self.callbacks: list[Any] = []

    def commit_async(self, offsets: dict[TopicPartition, Any], callback: Any) -> None:
        self.sent.append({tp: meta.offset for tp, meta in offsets.items()})
        self.callbacks.append((callback, offsets))

    def answer(self, index: int, response: Any = None) -> None:
        callback, offsets = self.callbacks[index]
        callback(offsets, response)


def test_acks_coalesce_while_a_commit_is_outstanding_and_go_out_after_it_answers():
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    committer = OffsetCommitter("m", timeout_ms=30_000)
    consumer = Consumer()
    # Given one commit on its way
    committer.note(tp0, 5, -1)
    committer.flush(consumer)
    # When more acks arrive over several reader turns before it answers
    committer.note(tp0, 9, -1)
    committer.flush(consumer)
    committer.note(tp1, 3, -1)
    committer.flush(consumer)
    # Then nothing more was sent yet
    assert consumer.sent == [{tp0: 5}]
    # When the first commit answers, the next flush sends the latest offsets in one request
    consumer.answer(0)
    committer.flush(consumer)
    assert consumer.sent == [{tp0: 5}, {tp0: 9, tp1: 3}]
    assert committer.committed == {tp0: 5}
