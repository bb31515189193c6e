"""Property: any function response, with ReportBatchItemFailures on, is classified by
AWS's rules (ESM-SPEC §4.2-4.4) and never raises: complete success for the empty answers,
a partial failure naming exactly the listed records when every entry is valid, and
otherwise a complete failure (`functionError` null): invalid JSON, `batchItemFailures` not
an array, an entry not an object, no `itemIdentifier`, an identifier null, empty,
malformed or not in the batch. The failure policy then settles every record exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connectors.kafka.event import item_id, parse_item_identifier
from connectors.sqs.records import normalise_item_identifier
from esm.failures.policy import FailurePolicy
from esm.failures.responses import INVALID_RESPONSE, interpret
from esm.records import (
    Ack,
    Batch,
    DeadLetter,
    FunctionError,
    PartialFailure,
    Record,
    Release,
    Retry,
    Returned,
    Split,
    Step,
    Success,
)
from tests.unit.fuzz.json_values import ODD_TEXT, deep_nesting, json_values, production_stack

_EMPTIES: tuple[Any, ...] = (None, "", [], {})


class Family:
    """How one source family names records in batchItemFailures."""

    def __init__(self, name: str, identify: Callable[[object], str | None],
                 identifier: Callable[[str, int], object], item: Callable[[str, int], str],
                 family: str) -> None:
        self.name, self.identify, self.identifier, self.item = name, identify, identifier, item
        self.family = family


FAMILIES = [
    Family("kafka", parse_item_identifier,
           lambda lane, n: {"partition": lane, "offset": n}, item_id, "stream"),
    Family("sqs", normalise_item_identifier, lambda lane, n: f"msg-{n}",
           lambda lane, n: f"msg-{n}", "queue"),
    Family("shards", lambda v: v if isinstance(v, str) and v else None,
           lambda lane, n: str(49_000 + n), lambda lane, n: str(49_000 + n), "stream"),
]


def batch_of(family: Family, size: int) -> Batch:
    lane = "orders-3"
    return Batch(lane, tuple(Record(lane=lane, position=str(n), item_id=family.item(lane, n),
                                    payload={"n": n}, size_bytes=10, timestamp=1.0)
                             for n in range(size)))


def _junk() -> st.SearchStrategy[Any]:
    return st.one_of(json_values(max_leaves=6), ODD_TEXT, deep_nesting(1000),
                     st.sampled_from([0, -1, 5.0, True, "", " ", "5", 10**30]))


@st.composite
def identifiers(draw: st.DrawFn, family: Family, size: int) -> Any:
    """An itemIdentifier: a record of the batch (often), an unknown or malformed one."""
    n = draw(st.integers(0, size + 2))
    good = family.identifier("orders-3", n)
    kafka_variants = [{"partition": "orders-3", "offset": str(n)},
                      {"partition": "orders-3", "offset": float(n)},
                      {"partition": "orders-3", "offset": -n - 1}, {"offset": n},
                      {"partition": "", "offset": n}, {"partition": "orders-3"}]
    return draw(st.one_of(st.just(good), st.just(good), st.sampled_from(kafka_variants),
                          st.none(), st.just(""), _junk(), deep_nesting(1000)))


@st.composite
def responses(draw: st.DrawFn, family: Family, size: int) -> Returned:
    entry = st.one_of(
        st.builds(lambda i: {"itemIdentifier": i}, identifiers(family, size)),
        st.builds(lambda i, extra: {"itemIdentifier": i, **extra}, identifiers(family, size),
                  st.dictionaries(st.text(max_size=5), _junk(), max_size=2)),
        st.builds(lambda i: {"itemidentifier": i}, identifiers(family, size)),
        _junk())
    failures = st.one_of(st.lists(entry, max_size=6), st.none(), _junk(),
                         st.lists(st.builds(lambda i: {"itemIdentifier": i},
                                            identifiers(family, size)), min_size=1000,
                                  max_size=1000))
    payload = draw(st.one_of(
        st.builds(lambda f: {"batchItemFailures": f}, failures),
        st.builds(lambda f, extra: {**extra, "batchItemFailures": f}, failures,
                  st.dictionaries(st.text(max_size=5), _junk(), max_size=2)),
        st.sampled_from(_EMPTIES), _junk(), deep_nesting(1000)))
    encoded = draw(st.sampled_from(["json", "json", "broken", "empty"]))
    if encoded == "json":
        body = json.dumps(payload).encode()
        try:
            return Returned(payload=orjson.loads(body))  # as the targets decode it
        except orjson.JSONDecodeError:  # deeper than orjson parses: not valid JSON to it
            return Returned(payload=None, raw=body, valid_json=False)
    if encoded == "broken":
        raw = draw(st.one_of(st.binary(max_size=20), st.sampled_from(
            [b"{", b"[1,", b"\xff", b"nul", b'{"batchItemFailures": [}'])))
        return Returned(payload=None, raw=raw, valid_json=False)
    return Returned(payload=None, raw=draw(st.sampled_from([b"", b"  ", b"\n", None])),
                    valid_json=False)


def expected(result: Returned, batch: Batch, family: Family) -> tuple[str, set[str]]:
    """ESM-SPEC §4.2-4.4, written out: ("success" | "partial" | "failure", failed ids)."""
    if not result.valid_json:
        return ("success", set()) if not (result.raw or b"").strip() else ("failure", set())
    payload = result.payload
    if any(type(payload) is type(e) and payload == e for e in _EMPTIES):
        return "success", set()
    if not isinstance(payload, dict):
        return "failure", set()
    failures = payload.get("batchItemFailures")
    if failures is None or failures == []:
        return "success", set()
    if not isinstance(failures, list):
        return "failure", set()
    ids = {r.item_id for r in batch.records}
    named = set()
    for entry in failures:
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            return "failure", set()
        normalised = family.identify(entry["itemIdentifier"])
        if entry["itemIdentifier"] in (None, "") or normalised not in ids:
            return "failure", set()
        named.add(normalised)
    return "partial", named


def settled(steps: tuple[Step, ...]) -> list[Record]:
    """Every record the steps settle, each as often as it appears."""
    out: list[Record] = []
    for step in steps:
        match step:
            case Ack(records=records) | Release(records=records) | DeadLetter(
                    records=records):
                out += records
            case Retry(batch=batch):
                out += batch.records
            case Split(batches=batches):
                out += [r for b in batches for r in b.records]
    return out


@given(data=st.data(), family=st.sampled_from(FAMILIES), size=st.integers(1, 5),
       retries=st.integers(-1, 3), bisect=st.booleans())
def test_any_response_is_classified_by_aws_rules_and_settles_every_record_once(
        data: st.DataObject, family: Family, size: int, retries: int, bisect: bool) -> None:
    batch = batch_of(family, size)
    result = data.draw(responses(family, size))
    # When the response is interpreted with ReportBatchItemFailures on
    with production_stack():  # a lane worker's stack, not Hypothesis's raised limit
        outcome = interpret(result, batch, report_batch_item_failures=True,
                            item_identifier=family.identify)
    # Then it is what AWS's rules say
    kind, named = expected(result, batch, family)
    match outcome:
        case Success():
            assert kind == "success"
        case PartialFailure(failed=failed):
            assert kind == "partial" and {r.item_id for r in failed} == named
            assert list(failed) == [r for r in batch.records if r.item_id in named]
        case FunctionError(error_type=error_type, function_error=None):
            assert kind == "failure" and error_type == INVALID_RESPONSE
        case _:
            raise AssertionError(f"unexpected outcome {outcome!r}")
    # And ignored without ReportBatchItemFailures (ESM-SPEC §4.3)
    assert interpret(result, batch, report_batch_item_failures=False,
                     item_identifier=family.identify) == Success()
    # And the failure policy settles each record exactly once
    policy = FailurePolicy(family.family, maximum_retry_attempts=retries,  # type: ignore[arg-type]
                           bisect_batch_on_function_error=bisect)
    steps = policy.decide(batch, outcome, attempt=0, invoke_count=1, now=2.0)
    assert sorted(map(id, settled(steps))) == sorted(map(id, batch.records))
