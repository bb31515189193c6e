"""Benchmark: records/s from SQS to a no-op target through SqsSource, against a raw boto3
receive+delete loop with the same concurrency, on ElasticMQ. Prints figures and the ratio
(target ≥ 85%). Run: `python3 -m tests.bench.bench_sqs [messages] [concurrency]`.

The "esm" side is the reader's work per batch: poll, build the event, (no-op invoke), ack.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from connectors.sqs.source import SqsSettings, SqsSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.servers.sqs_server import CREDENTIALS, REGION, SqsServer


def fill(server: SqsServer, url: str, count: int) -> None:
    client = server.client()

    def send(start: int) -> None:
        entries = [{"Id": str(i), "MessageBody": orjson.dumps({"n": start + i}).decode()}
                   for i in range(min(10, count - start))]
        client.send_message_batch(QueueUrl=url, Entries=entries)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(0, count, 10)))


def raw_loop(server: SqsServer, url: str, count: int, concurrency: int) -> float:
    client = server.client(config=pool_config(concurrency))
    start = time.perf_counter()
    drain(client, url, count, concurrency, batch=10)
    return count / (time.perf_counter() - start)


def drain(client: Any, url: str, count: int, concurrency: int, batch: int,
          handle: Callable[[list[Any]], None] = lambda messages: None) -> None:
    """`concurrency` threads: each receives (10 a call) until it holds `batch` messages or a
    receive comes back short, hands them to `handle`, then deletes them, 10 a call."""
    done = [0]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if done[0] >= count:
                    return
            messages: list[Any] = []
            while len(messages) < batch:
                got = client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=min(10, batch - len(messages)),
                    WaitTimeSeconds=1).get("Messages") or []
                messages += got
                if len(got) < 10:
                    break
            handle(messages)
            for start in range(0, len(messages), 10):
                client.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages[start:start + 10])])
            with lock:
                done[0] += len(messages)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def esm_loop(server: SqsServer, url: str, count: int, concurrency: int) -> float:
    settings = SqsSettings(queue_url=url, endpoint_url=server.endpoint_url, region=REGION,
                           access_key_id=CREDENTIALS["aws_access_key_id"],
                           secret_access_key=CREDENTIALS["aws_secret_access_key"],
                           pollers=concurrency, slots=concurrency)
    source = SqsSource(settings, ConnectorContext("bench", threading.Event(), SystemClock()))

    class Listener:
        def lanes_assigned(self, lanes: Any) -> None: ...
        def lanes_revoked(self, lanes: Any) -> None: ...

    source.open(Listener())
    seen = 0
    start = time.perf_counter()
    while seen < count:
        records = source.poll(100, 1.0)
        if records:
            orjson.dumps(source.build_event(records))  # the event the target would get
            source.ack(records)
            seen += len(records)
    elapsed = time.perf_counter() - start
    source.close()
    return count / elapsed


def pool_config(concurrency: int) -> Any:
    from botocore.config import Config

    return Config(max_pool_connections=concurrency + 4)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    server = SqsServer()
    server.start()
    try:
        results = {}
        for name, loop in (("raw boto3", raw_loop), ("esm SqsSource", esm_loop)):
            url = server.create_queue()
            fill(server, url, count)
            results[name] = loop(server, url, count, concurrency)
            print(f"{name:>14}: {results[name]:8.0f} records/s "
                  f"({count} messages, concurrency {concurrency})")
        ratio = results["esm SqsSource"] / results["raw boto3"]
        print(f"ratio esm/raw: {ratio:.0%} (target >= 85%)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
