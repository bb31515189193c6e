"""Benchmark the activemq source: records/s through the whole pipeline (read, batch,
invoke a no-op python target, accept) beside a raw proton receive + accept loop, in the
same run, against the same real broker.

Run: `python3 -m tests.bench.bench_activemq [--messages N] [--batch-size B]`.
Prints figures only; nothing here asserts on timing. Both loops read a queue filled with
the same N small JSON messages beforehand; both accept every message. The messages are
non-persistent: persistent ones make every send and accept a KahaDB disk sync, and the
broker's disk, not the client, would set both figures (~900 records/s here).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proton.utils import BlockingConnection

from connectors.activemq.sending import send_messages
from esm.config.loading import load_config
from esm.runtime.daemon import Daemon
from tests.servers.activemq_server import ActiveMQServer

HANDLER = "tests.bench.bench_activemq:handle"
_counted = [0]  # in this module as the daemon imports it (not __main__): see `counted`
_lock = threading.Lock()


def handle(event: dict[str, Any], context: Any) -> None:
    """The benchmark's target: counts messages, does nothing else."""
    with _lock:
        _counted[0] += len(event["messages"])


def counted() -> list[int]:
    module = importlib.import_module(HANDLER.partition(":")[0])
    return module._counted  # type: ignore[no-any-return]


def fill(server: ActiveMQServer, queue: str, count: int) -> float:
    body = base64.b64encode(json.dumps({"type": "order", "amount": 12}).encode()).decode()
    started = time.perf_counter()
    message = {"messageType": "jms/text-message", "data": body, "deliveryMode": 1}
    send_messages(server.url, queue, [message] * count, user=None, password=None,
                  timeout_seconds=30)
    return time.perf_counter() - started


def raw_proton(server: ActiveMQServer, queue: str, count: int, credit: int) -> float:
    """Receive and accept `count` messages with proton's blocking API; seconds taken."""
    return drain(server.url, queue, count, credit, batch=1)


def drain(url: str, queue: str, count: int, credit: int, batch: int,
          on_start: Callable[[], None] = lambda: None) -> float:
    """Receive `count` messages; each `batch`, once all of it has arrived, goes to `handle`
    and is then accepted (proton settles the oldest unsettled delivery per accept). Seconds
    from the receiver's attach, when `on_start` is called."""
    conn = BlockingConnection(url, timeout=30)
    try:
        receiver = conn.create_receiver(queue, credit=credit)
        start = time.perf_counter()
        on_start()
        done = 0
        while done < count:
            run = [receiver.receive(timeout=30) for _ in range(min(batch, count - done))]
            handle({"messages": run}, None)
            for _ in run:
                receiver.accept()
            done += len(run)
        return time.perf_counter() - start
    finally:
        conn.close()


def through_esm(server: ActiveMQServer, queue: str, count: int, batch_size: int,
                credit: int) -> float:
    """Seconds for the daemon to invoke the target with all `count` messages, from the
    moment its source is connected (daemon start-up is not throughput)."""
    counter = counted()
    counter[0] = 0
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "bench.yaml"
        path.write_text(json.dumps({"mappings": [{
            "name": "bench", "batch_size": batch_size,
            "maximum_batching_window_in_seconds": 0.5,
            "source": {"type": "activemq", "url": server.url, "queue": queue,
                       "credit": credit},
            "target": {"type": "python", "handler": HANDLER},
        }], "server": {"enabled": False}, "logging": {"level": "WARNING"}}))
        daemon = Daemon(load_config([str(path)], dict(os.environ)))
        daemon.start()
        try:
            # timed from the moment the source is open, as the raw loop is from its receiver
            while not daemon.statuses["bench"].ready:
                time.sleep(0.0005)
            started = time.perf_counter()
            while counter[0] < count:
                time.sleep(0.005)
            return time.perf_counter() - started
        finally:
            daemon.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--credit", type=int, default=500)
    args = parser.parse_args()
    server = ActiveMQServer()
    server.start()
    try:
        n = args.messages
        tag = uuid.uuid4().hex[:6]
        raw_queue, esm_queue = f"bench-raw-{tag}", f"bench-esm-{tag}"
        filled = fill(server, raw_queue, n) + fill(server, esm_queue, n)
        print(f"filled 2 queues with {n} messages each in {filled:.1f}s")
        raw = n / raw_proton(server, raw_queue, n, args.credit)
        esm = n / through_esm(server, esm_queue, n, args.batch_size, args.credit)
        print(f"raw proton receive+accept: {raw:,.0f} records/s")
        print(f"esm activemq -> python (batch {args.batch_size}): {esm:,.0f} records/s")
        print(f"ratio esm/raw: {esm / raw:.0%}")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
