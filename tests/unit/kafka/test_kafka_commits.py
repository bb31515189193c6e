"""Asynchronous offset commits coalesce while one is on its way, and their answers (served
by librdkafka's on_commit callback) are classified on the next flush."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connectors.kafka.commits import OffsetCommitter
from esm.errors import SourceUnavailable

T0, T1 = ("t", 0), ("t", 1)


class Consumer:
    def __init__(self) -> None:
        self.sent: list[dict[tuple[str, int], int]] = []
        self.epochs: list[int | None] = []
        self.batches: list[list[TopicPartition]] = []
        self.sync_error: KafkaException | None = None

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        if not asynchronous and self.sync_error is not None:
            raise self.sync_error
        self.sent.append({(tp.topic, tp.partition): tp.offset for tp in offsets})
        self.epochs += [tp.leader_epoch for tp in offsets]
        self.batches.append(offsets)
        return None if asynchronous else offsets


def answer(committer: OffsetCommitter, partitions: list[Any],
           error: KafkaError | None = None) -> None:
    committer.on_commit(error, partitions)


def test_acks_coalesce_while_a_commit_is_outstanding_and_go_out_after_it_answers() -> None:
    committer = OffsetCommitter("m")
    consumer = Consumer()
    # Given one commit on its way
    committer.note(T0, 5, None)
    committer.flush(consumer)
    # When more acks arrive over several reader turns before it answers
    committer.note(T0, 9, None)
    committer.flush(consumer)
    committer.note(T1, 3, None)
    committer.flush(consumer)
    # Then nothing more was sent yet
    assert consumer.sent == [{T0: 5}]
    # When the first commit answers, the next flush sends the latest offsets in one request
    answer(committer, consumer.batches[0])
    committer.flush(consumer)
    assert consumer.sent == [{T0: 5}, {T0: 9, T1: 3}]
    assert committer.committed == {T0: 5}


def test_the_leader_epoch_goes_with_the_commit_when_known() -> None:
    committer, consumer = OffsetCommitter("m"), Consumer()
    committer.note(T0, 5, 7)
    committer.note(T1, 2, None)
    committer.flush(consumer)
    assert sorted(consumer.epochs, key=str) == [7, None]


def test_a_per_partition_failure_is_retried_and_the_other_partition_confirmed() -> None:
    committer, consumer = OffsetCommitter("m"), Consumer()
    committer.note(T0, 5, None)
    committer.note(T1, 8, None)
    committer.flush(consumer)
    # When the broker confirms T1 but its coordinator answer for T0 is retriable
    # (librdkafka's TopicPartition.error is read-only: a look-alike carries it)
    failed = SimpleNamespace(topic="t", partition=0, offset=5,
                             error=KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS))
    answer(committer, [failed, TopicPartition("t", 1, 8)])
    committer.flush(consumer)
    # Then T1 counts as committed and T0 goes out again
    assert committer.committed == {T1: 8}
    assert consumer.sent[-1] == {T0: 5}


def test_the_answer_to_a_synchronous_commit_is_not_taken_for_the_async_one() -> None:
    # librdkafka reports synchronous commits through on_commit too; their failures were
    # raised where they were made and must not count again
    committer, consumer = OffsetCommitter("m", max_failures=0), Consumer()
    committer.note(T0, 5, None)
    committer.flush(consumer)
    answer(committer, [TopicPartition("t", 0, 4)], KafkaError(KafkaError._TIMED_OUT))
    committer.flush(consumer)  # no raise: offset 4 was not this commit's
    assert consumer.sent == [{T0: 5}]


@pytest.mark.parametrize("code", [KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                                  KafkaError.UNKNOWN_MEMBER_ID, KafkaError._ASSIGNMENT_LOST])
def test_a_sync_commit_refused_because_the_group_moved_on_is_dropped(code: int) -> None:
    committer, consumer = OffsetCommitter("m"), Consumer()
    committer.note(T0, 5, None)
    consumer.sync_error = KafkaException(KafkaError(code))
    committer.commit_sync(consumer, [T0])  # no raise: the new owner reads them again
    assert committer.committed == {}


def test_a_sync_commit_failing_otherwise_is_source_unavailable() -> None:
    committer, consumer = OffsetCommitter("m"), Consumer()
    committer.note(T0, 5, None)
    consumer.sync_error = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    with pytest.raises(SourceUnavailable, match="commit failed"):
        committer.commit_sync(consumer, [T0])
