"""Benchmark: RabbitMQ → no-op Python target, beside a raw pika consume+ack loop.

Both loops drain the same number of messages from fresh queues on a private broker:
- raw: basic.consume with the same prefetch esm uses by default (2 x batch), a batch of
  `batch` deliveries gathered, then one basic.ack(multiple=True) for it (the ceiling);
- esm: the whole daemon (reader, lane workers, python target with a no-op handler),
  batch `batch`, default window and prefetch, from start until every message is acked.
Prints records/s of both and the ratio (target >= 70%). No timing asserts: run it, read
the figures.

    python3 -m tests.bench.bench_rabbitmq [--records 50000] [--batch 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median_high
from typing import Any

import orjson
import pika

from tests.bench.progress import wait_for_count
from tests.servers.rabbitmq_server import PASSWORD, RabbitMQServer

DAEMON_CONFIG = """
mappings:
  - name: bench
    source: {{type: rabbitmq, url: "{url}", queues: [{queue}],
             password_env: BENCH_RMQ_PASSWORD{extra}}}
    batch_size: {batch}
    target: {{type: python, handler: "tests.bench.bench_rabbitmq:_noop_handler",
             timeout_seconds: 10}}
server: {{enabled: false}}
"""


def _noop_handler(event: dict[str, Any], context: object) -> None:
    return None


def produce(server: RabbitMQServer, queue: str, count: int) -> None:
    with server.connection() as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=1)
        for n in range(count):
            body = orjson.dumps({"type": "order", "id": n, "amount": n % 97})
            channel.basic_publish("", queue, body, properties)
        channel.queue_declare(queue, passive=True)  # a round trip: every publish is in


def raw_loop(server: RabbitMQServer, queue: str, count: int, batch: int) -> float:
    """Records/s of a bare consume + ack-per-batch loop."""
    connection = server.connection()
    started = time.perf_counter()
    drain(connection, queue, count, batch)
    rate = count / (time.perf_counter() - started)
    connection.close()
    return rate


def drain(connection: Any, queue: str, count: int, batch: int) -> None:
    """Consume `count` messages (prefetch 2 x batch, esm's default), each `batch` handed to
    the no-op handler, then acked with one basic.ack(multiple=True)."""
    channel = connection.channel()
    channel.basic_qos(prefetch_count=2 * batch)
    pending: list[int] = []
    done = 0

    def delivered(_ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        pending.append(method.delivery_tag)

    channel.basic_consume(queue, delivered)
    while done < count:
        connection.process_data_events(time_limit=0.5)
        while len(pending) >= batch or (pending and done + len(pending) >= count):
            run, pending[:] = pending[:batch], pending[batch:]
            _noop_handler({"messages": run}, None)
            channel.basic_ack(run[-1], multiple=True)
            done += len(run)


def daemon_loop(server: RabbitMQServer, queue: str, count: int, batch: int,
                prefetch: int | None = None) -> float:
    """Records/s of the whole daemon, from its start until every message is acked."""
    from esm.config.loading import load_config
    from esm.runtime.daemon import Daemon

    os.environ["BENCH_RMQ_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        extra = f", prefetch_count: {prefetch}" if prefetch else ""
        path.write_text(DAEMON_CONFIG.format(url=server.url, queue=queue, batch=batch,
                                             extra=extra))
        daemon = Daemon(load_config([str(path)], {}))
    daemon.start()
    started = time.perf_counter()
    done = wait_for_count(daemon, "deleted", count, timeout_seconds=600)
    rate = count / (time.perf_counter() - started)
    daemon.shutdown()
    assert done >= count, f"only {done} of {count} messages acked"
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=None,
                        help="the daemon's prefetch_count (default: its own, 2 x batch)")
    args = parser.parse_args()
    server = RabbitMQServer()
    server.start()
    try:
        rounds = []
        for _ in range(args.rounds):  # each round: fresh queues, raw then daemon
            raw_queue, esm_queue = (f"bench-{k}-{uuid.uuid4().hex[:6]}" for k in "re")
            produce(server, raw_queue, args.records)
            produce(server, esm_queue, args.records)
            rounds.append((raw_loop(server, raw_queue, args.records, args.batch),
                           daemon_loop(server, esm_queue, args.records, args.batch,
                                       args.prefetch)))
        ratios = [d / r for r, d in rounds]
        print(f"{args.records} messages per loop, batch {args.batch}, {args.rounds} rounds; "
              f"ratios are per round, to the raw loop of the same round")
        print(f"raw pika consume+ack : {median_high([r for r, _ in rounds]):9,.0f} records/s "
              f"(median)")
        print(f"whole daemon         : {median_high([d for _, d in rounds]):9,.0f} records/s, "
              f"ratio median {median_high(ratios):.0%} (rounds: "
              f"{', '.join(f'{r:.0%}' for r in ratios)}; target >= 70%)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
