"""The damage suite's ledger check (tests/chaos/ledger.py) on hand-written journals and
notices: it must see a loss, an order break, a duplicate and a payload-less notice."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.chaos.ledger import Ledger, Produced


def journal(path: Path, *lines: tuple[str, str, bool]) -> Path:
    """(kind, id, clean) lines."""
    path.write_text("".join(json.dumps({"kind": k, "id": i, "clean": c}) + "\n"
                            for k, i, c in lines))
    return path


def kafka_notice(*records: Produced) -> dict[str, Any]:
    return {"requestContext": {"approximateInvokeCount": 3},
            "payload": {"records": {"t-0": [
                {"offset": r.seq, "value": base64.b64encode(json.dumps(r.doc()).encode())
                 .decode()} for r in records]}}}


def ledger(tmp_path: Path, notices: list[dict[str, Any]], *, stream: bool = True) -> Ledger:
    book = Ledger("unit", 1, tmp_path / "journal.jsonl", lambda: notices, ordered=stream,
                  stream=stream, in_flight_bound=10)
    book.add([Produced(f"r{n}", "p0", n, poison=n == 2) for n in range(4)])
    return book


def test_a_record_neither_delivered_nor_dead_lettered_is_lost(tmp_path: Path) -> None:
    book = ledger(tmp_path, [kafka_notice(Produced("r2", "p0", 2, True))])
    journal(book.journal, ("ok", "r0", True), ("ok", "r1", True), ("fail", "r3", False))
    result = book.result()
    assert result.lost == ["r3"]
    assert (result.delivered, result.dead_lettered) == (2, 1)
    assert "1 lost" in result.problems()[0]


def test_first_deliveries_out_of_lane_order_are_refused(tmp_path: Path) -> None:
    book = ledger(tmp_path, [kafka_notice(Produced("r2", "p0", 2, True))])
    journal(book.journal, ("ok", "r0", True), ("ok", "r3", True), ("ok", "r1", True))
    assert book.result().order_breaks == ["p0: r1 after seq 3"]


def test_stream_redeliveries_after_a_partial_failure_are_not_duplicates(tmp_path: Path) -> None:
    book = ledger(tmp_path, [kafka_notice(Produced("r2", "p0", 2, True))])
    # r1 succeeded in a batch that failed partly (retried by design), then in a clean one;
    # r0 succeeded in a clean batch and came back: a duplicate
    journal(book.journal, ("ok", "r0", True), ("ok", "r1", False), ("ok", "r1", True),
            ("ok", "r0", True), ("ok", "r3", True))
    result = book.result()
    assert result.duplicates == 1 and not result.problems()


def test_queue_duplicates_count_every_success_after_the_first(tmp_path: Path) -> None:
    book = ledger(tmp_path, [kafka_notice(Produced("r2", "p0", 2, True))], stream=False)
    journal(book.journal, ("ok", "r0", False), ("ok", "r0", True), ("ok", "r1", True),
            ("ok", "r3", True))
    assert book.result().duplicates == 1


def test_a_notice_without_payload_accounts_for_nothing(tmp_path: Path) -> None:
    book = ledger(tmp_path, [{"requestContext": {}}])
    journal(book.journal, ("ok", "r0", True), ("ok", "r1", True), ("ok", "r3", True))
    result = book.result()
    assert result.lost == ["r2"] and result.notices_without_payload == 1


def test_healthy_records_dead_lettered_uninvoked_are_reported(tmp_path: Path) -> None:
    notice = kafka_notice(Produced("r1", "p0", 1), Produced("r2", "p0", 2, True))
    notice["requestContext"]["approximateInvokeCount"] = 0
    book = ledger(tmp_path, [notice])
    journal(book.journal, ("ok", "r0", True), ("ok", "r3", True))
    result = book.result()
    assert result.uninvoked_healthy == ["r1"]
    assert "without an invocation" in result.anomalies()[0]


def test_healthy_records_dead_lettered_before_failing_the_limit_are_reported(
        tmp_path: Path) -> None:
    # r1 failed twice at the handler, r3 three times: only r1 went early (poison r2 is
    # expected there however often it failed)
    notice = kafka_notice(Produced("r1", "p0", 1), Produced("r2", "p0", 2, True),
                          Produced("r3", "p0", 3))
    book = Ledger("unit", 1, tmp_path / "journal.jsonl", lambda: [notice], ordered=False,
                  stream=False, in_flight_bound=10, dead_letter_after=3)
    book.add([Produced(f"r{n}", "p0", n, poison=n == 2) for n in range(4)])
    journal(book.journal, ("ok", "r0", True), *[("fail", "r1", False)] * 2,
            ("fail", "r2", False), *[("fail", "r3", False)] * 3)
    result = book.result()
    assert result.early_healthy == ["r1"] and not result.problems()
    assert "before failing" in result.anomalies()[0]
    # without a limit, nothing is checked
    assert ledger(tmp_path, [notice], stream=False).result().early_healthy == []


def test_a_replica_that_did_not_exit_on_sigterm_is_refused(tmp_path: Path) -> None:
    # Given a run where everything arrived but one replica hung on SIGTERM and was killed
    book = ledger(tmp_path, [kafka_notice(Produced("r2", "p0", 2, True))])
    journal(book.journal, ("ok", "r0", True), ("ok", "r1", True), ("ok", "r3", True))
    book.stuck_stops += 1
    result = book.result()
    # Then nothing is lost, yet the check refuses the run and says why
    assert result.lost == []
    assert any("did not exit within 30 s of SIGTERM" in p for p in result.problems())
