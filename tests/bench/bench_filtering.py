"""Benchmark esm.filtering: matches per second on a mixed corpus.

Run: `python3 tests/bench/bench_filtering.py [--documents N] [--seconds S]`.
Prints figures only; nothing here asserts on timing.

The corpus mixes SQS-, Kafka-, DynamoDB- and EventBridge-shaped filter views (decoded
bodies, nested objects, arrays of objects, numbers as ints and floats), generated from a
fixed seed so runs are comparable. Each pattern is timed over every document, then the
whole set is timed as one `compile_filters` OR (the reader's hot path).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from esm.filtering import compile_filters, compile_pattern

PATTERNS: dict[str, dict[str, Any]] = {
    "exact": {"body": {"type": ["order"]}},
    "exact-list+nested": {"body": {"type": ["order", "refund"], "customer": {"tier": ["gold"]}}},
    "prefix+suffix": {"body": {"sku": [{"prefix": "SKU-1"}, {"suffix": "-X"}]}},
    "ignore-case": {"body": {"currency": [{"equals-ignore-case": "eur"}]}},
    "numeric-range": {"body": {"amount": [{"numeric": [">", 100, "<=", 500]}]}},
    "anything-but": {"body": {"status": [{"anything-but": ["cancelled", "failed"]}]}},
    "exists": {"body": {"coupon": [{"exists": True}], "note": [{"exists": False}]}},
    "cidr": {"body": {"ip": [{"cidr": "10.0.0.0/12"}]}},
    "wildcard": {"body": {"path": [{"wildcard": "/api/*/orders/*"}]}},
    "array-consistency": {"body": {"items": {"sku": [{"prefix": "SKU-2"}],
                                             "qty": [{"numeric": [">=", 3]}]}}},
    "$or": {"$or": [{"body": {"type": ["refund"]}},
                    {"body": {"amount": [{"numeric": [">", 900]}]}}]},
    "ddb-typed": {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["open"]}}}},
}


def make_documents(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic mixed filter views."""
    rng = random.Random(seed)
    return [_document(rng, index) for index in range(count)]


def _document(rng: random.Random, index: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": rng.choice(["order", "refund", "quote", "order"]),
        "customer": {"id": index, "tier": rng.choice(["gold", "silver", "bronze"])},
        "sku": f"SKU-{rng.randint(1, 40)}-{rng.choice('XYZ')}",
        "currency": rng.choice(["EUR", "eur", "USD", "GBP"]),
        "amount": rng.choice([rng.randint(1, 1000), rng.uniform(1, 1000)]),
        "status": rng.choice(["new", "paid", "cancelled", "failed", "shipped"]),
        "ip": f"10.{rng.randint(0, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "path": rng.choice(["/api/v1/orders/17", "/api/v2/users/3", "/health"]),
        "items": [{"sku": f"SKU-{rng.randint(1, 30)}", "qty": rng.randint(1, 5)}
                  for _ in range(rng.randint(0, 4))],
    }
    if rng.random() < 0.3:
        body["coupon"] = "SPRING"
    if rng.random() < 0.2:
        body["note"] = None
    record: dict[str, Any] = {"messageId": f"m-{index}", "body": body,
                              "attributes": {"ApproximateReceiveCount": "1"}}
    if index % 3 == 0:
        record["eventName"] = rng.choice(["INSERT", "MODIFY", "REMOVE"])
        record["dynamodb"] = {"NewImage": {"status": {"S": rng.choice(["open", "closed"])}}}
    return record


def _rate(test: Callable[[Any], bool], documents: list[dict[str, Any]],
          seconds: float) -> tuple[float, int]:
    """Matches per second over repeated passes for at least `seconds`; and the hit count."""
    hits = sum(1 for doc in documents if test(doc))
    passes, started = 0, time.perf_counter()
    while True:
        for doc in documents:
            test(doc)
        passes += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return passes * len(documents) / elapsed, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    documents = make_documents(args.documents)
    print(f"{len(documents)} documents, {len(PATTERNS)} patterns")
    started = time.perf_counter()
    compiled = {name: compile_pattern(pattern) for name, pattern in PATTERNS.items()}
    compile_ms = (time.perf_counter() - started) * 1000
    print(f"compile: {compile_ms:.2f} ms for all patterns")
    # Measured first, so each row can be read as a fraction of plain Python on this machine.
    base_rate, _hits = _rate(_baseline, documents, args.seconds)
    print(f"{'pattern':<20} {'matches/s':>12} {'hit rate':>9} {'vs baseline':>12}")
    print(f"{'hand-written exact':<20} {base_rate:>12,.0f} {'':>9} {1:>12.2f}")
    rows = [(name, matcher.matches) for name, matcher in compiled.items()]
    rows.append(("OR of 5 filters", compile_filters(list(PATTERNS.values())[:5]).matches))
    for name, test in rows:
        rate, hits = _rate(test, documents, args.seconds)
        print(f"{name:<20} {rate:>12,.0f} {hits / len(documents):>8.1%} "
              f"{rate / base_rate:>12.2f}")


def _baseline(doc: dict[str, Any]) -> bool:
    """A hand-written Python check equivalent to the "exact" pattern."""
    body = doc.get("body")
    return isinstance(body, dict) and body.get("type") == "order"

if __name__ == "__main__":
    main()
