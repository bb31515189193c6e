"""LaneWorker settlements: what travels back to the reader, and when (DESIGN §2)."""

from __future__ import annotations

import json

from esm.records import Batch, Settlement
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config


def polled_batch(rig: Rig, count: int) -> Batch:
    rig.put(*[json.dumps({"id": i}) for i in range(count)])
    records = rig.source.poll(count, 0)
    return Batch(records[0].lane, tuple(records))


def test_successful_batch_hands_back_one_settlement_that_acks_and_finishes() -> None:
    # Given a batch of three records and a target that succeeds
    rig = Rig(mapping_config(batch_size=3), ScriptedTarget())
    batch = polled_batch(rig, 3)
    settled: list[Settlement] = []
    # When a lane worker processes it
    rig.worker.process(batch, settled.append)
    # Then the reader receives exactly one settlement: the ack, marked finished
    assert len(settled) == 1
    assert settled[0].finished and settled[0].ack == batch.records and not settled[0].release


def test_ack_of_a_partial_success_reaches_the_reader_before_the_retry_waits() -> None:
    # Given a stream batch whose second record fails once, with a 1 s retry backoff
    failed_once: set[str] = set()

    def behaviour(records: list[dict]) -> dict:
        failing = [r["messageId"] for r in records
                   if json.loads(r["body"])["id"] == 1 and r["messageId"] not in failed_once]
        failed_once.update(failing)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failing]}

    mapping = mapping_config(batch_size=3, function_response_types=("ReportBatchItemFailures",))
    rig = Rig(mapping, ScriptedTarget(behaviour))
    batch = polled_batch(rig, 3)
    waits_seen: list[int] = []
    settled: list[Settlement] = []

    def settle(settlement: Settlement) -> None:
        waits_seen.append(len(rig.clock.waits))
        settled.append(settlement)

    # When a lane worker processes it
    rig.worker.process(batch, settle)
    # Then the first record's ack was handed back before the backoff wait started
    assert settled[0].ack == batch.records[:1] and not settled[0].finished
    assert waits_seen[0] == 0 and rig.clock.waits == [1.0]
    # And the retried records were acked with the final, finished settlement
    assert settled[-1].finished and settled[-1].ack == batch.records[1:]
    assert len(settled) == 2


def test_a_batch_that_settles_nothing_still_finishes() -> None:
    # Given a worker whose stop event is set before a retry (nothing acked or released)
    rig = Rig(mapping_config(maximum_retry_attempts=5),
              ScriptedTarget(lambda records: 1 / 0))
    batch = polled_batch(rig, 1)
    rig.worker.stop.set()
    settled: list[Settlement] = []
    # When a lane worker processes it
    rig.worker.process(batch, settled.append)
    # Then the only settlement is a bare `finished`
    assert settled == [Settlement(batch.lane, finished=True)]
