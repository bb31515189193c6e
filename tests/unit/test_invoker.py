"""esm.pipeline.invoker: request ids and the last processing result (ESM-SPEC §1.1, §4.1)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from esm.ops import status as st
from esm.ops.status import MappingStatus
from esm.pipeline.invoker import RequestIds
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config


def test_request_ids_are_unique_uuid4_strings_across_threads() -> None:
    # Given one id source shared by four lane workers
    ids = RequestIds()
    seen: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [ids.next() for _ in range(2000)]
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    # When they all take ids at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every id is distinct and parses as a version-4 UUID
    assert len(set(seen)) == 8000
    assert {uuid.UUID(i).version for i in seen} == {4}
    assert all(str(uuid.UUID(i)) == i for i in seen[:10])


def test_two_invokers_do_not_share_request_ids() -> None:
    # Given two id sources (two mappings, or a restarted reader) / Then their ids differ
    first, second = RequestIds(), RequestIds()
    assert {first.next() for _ in range(100)}.isdisjoint(second.next() for _ in range(100))


class CountingStatus(MappingStatus):
    updates = 0

    def update(self, **changes: Any) -> None:
        type(self).updates += 1
        super().update(**changes)


def test_last_processing_result_follows_outcomes_and_is_written_only_on_change() -> None:
    # Given a target that fails on the third batch only
    calls: list[int] = []

    def behaviour(records: list[dict]) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("boom")

    rig = Rig(mapping_config(batch_size=1, maximum_retry_attempts=0), ScriptedTarget(behaviour))
    status = CountingStatus("test", "memory", "python")
    rig.worker.invoker.status = status
    # When two single-record batches succeed
    rig.put("1", "2")
    rig.run_until_quiet()
    assert status.last_processing_result == st.OK and status.last_error is None
    assert CountingStatus.updates == 1  # the first success; the repeat wrote nothing
    # And then one fails and the next succeeds
    rig.put("3", "4")
    rig.run_until_quiet()
    # Then the failure was recorded, and the success after it cleared the error again
    assert calls == [1, 1, 1, 1]
    assert status.last_processing_result == st.OK and status.last_error is None
    assert CountingStatus.updates == 3


def test_a_source_that_encodes_its_events_is_used_and_its_size_is_checked() -> None:
    # Given a source that encodes events itself (EncodesEvents)
    from esm.ops.metrics import Metrics
    from esm.pipeline.invoker import Invoker, Oversized
    from esm.records import Batch, Event, Record, Returned, Success

    seen: list[bytes] = []

    class EncodingSource:
        def build_event(self, records: list[Record]) -> dict[str, Any]:
            return {"Records": [r.payload for r in records]}

        def encode_event(self, records: list[Record]) -> bytes:
            return b'{"Records":[' + b",".join(b'{"own":1}' for _ in records) + b"]}"

        def item_identifier(self, value: object) -> str | None:
            return None

    class Target:
        def invoke(self, event: Event, timeout_seconds: float) -> Returned:
            seen.append(event.body)
            return Returned(None)

    invoker = Invoker(source=EncodingSource(), target=Target(),  # type: ignore[arg-type]
                      timeout_seconds=1, report_batch_item_failures=False,
                      metrics=Metrics().for_mapping("m"),
                      status=MappingStatus("m", "memory", "python"), max_payload_bytes=40)
    batch = Batch("lane", (Record("lane", "1", "1", {"a": 1}, 7, 0.0),))
    # When a batch is invoked, the target gets the source's bytes
    assert invoker.invoke(batch) == Success()
    assert seen == [b'{"Records":[{"own":1}]}']
    # And the 6 MB check measures those bytes (here a 40-byte limit)
    three = Batch("lane", batch.records * 3)
    assert isinstance(invoker.invoke(three), Oversized)
