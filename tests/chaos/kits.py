"""One kit per source: the mapping's source section and failure settings, how to produce
numbered records onto the real server, the lane each record lands on, and the in-flight
bound that duplicates are reported against.

Failure settings follow each family: stream sources (Kafka, DynamoDB Streams, Kinesis)
bisect, report batch item failures and retry twice (`maximum_retry_attempts` 2), and the
handler raises on a batch holding a poison record; queue sources (Redis Streams, SQS,
RabbitMQ) name poison records in batchItemFailures and dead-letter after 3 failed attempts;
ActiveMQ, which takes no batchItemFailures (as on AWS), retries a failed batch whole and
dead-letters after 3 failed deliveries. Every kit has
a `file` on-failure destination unless the scenario swaps it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.ledger import Produced

Producer = Callable[[list[Produced]], None]


@dataclass
class Kit:
    name: str
    source: dict[str, Any]
    lane_of: Callable[[int], str]
    produce: Producer
    ordered: bool
    in_flight_bound: int
    stream: bool = True
    mapping_keys: dict[str, Any] = field(default_factory=dict)
    knobs: dict[str, str] = field(default_factory=dict)
    target_timeout_seconds: float = 5
    # failed attempts at the handler before a record may be dead-lettered, when the handler
    # journals every failure the source counts (no timeouts): the ledger checks it
    dead_letter_after: int | None = None
    # what the broker says about records the ledger misses (e.g. Kafka: committed past?)
    diagnose: Callable[[list[str]], str] = lambda missing: ""
    # Kafka: record id → (partition, offset) once produced
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None

    def records(self, start: int, count: int, seed: int, poison_per_mille: int) -> list[Produced]:
        """Records seq start…start+count-1; poison chosen by a hash of seed and id."""
        out = []
        for seq in range(start, start + count):
            record_id = f"r{seq}"
            poison = zlib.crc32(f"{seed}:{record_id}".encode()) % 1000 < poison_per_mille
            out.append(Produced(record_id, self.lane_of(seq), seq, poison))
        return out


STREAM_KEYS: dict[str, Any] = {
    "bisect_batch_on_function_error": True,
    "function_response_types": ["ReportBatchItemFailures"],
    "maximum_retry_attempts": 2,
    "retry_backoff": {"initial_seconds": 0.05, "maximum_seconds": 0.5},
}
STREAM_KNOBS = {"POISON_MODE": "raise"}
QUEUE_KEYS: dict[str, Any] = {
    "function_response_types": ["ReportBatchItemFailures"],
    "retry_backoff": {"initial_seconds": 0.2, "maximum_seconds": 1},
}
QUEUE_KNOBS = {"POISON_MODE": "report"}


def kafka_kit(server: Any, partitions: int = 4, batch_size: int = 100) -> Kit:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"chaos-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=5, retries=10)
    offsets: dict[str, tuple[int, int]] = {}  # record id → (partition, offset)
    group = f"{topic}-g"

    def produce(records: list[Produced]) -> None:
        sent = [(r.id, producer.send(topic, key=r.id.encode(), value=json.dumps(r.doc()).encode(),
                                     partition=r.seq % partitions)) for r in records]
        producer.flush(60)
        for record_id, future in sent:
            meta = future.get(10)
            offsets[record_id] = (meta.partition, meta.offset)

    def diagnose(missing: list[str]) -> str:
        committed = kafka_committed(server, group)
        past = [i for i in missing if offsets[i][1] < committed.get(offsets[i][0], 0)]
        where = sorted({f"p{offsets[i][0]}" for i in missing})
        return (f"kafka: {len(past)} of {len(missing)} missing record(s) are behind the "
                f"group's committed offset (skipped for good), the rest not committed "
                f"(stalled); partitions {where}; committed {committed}; first skipped "
                f"{[(i, offsets[i]) for i in past[:10]]}")

    return Kit(
        "kafka",
        {"type": "kafka", "bootstrap_servers": [server.bootstrap], "topics": [topic],
         "consumer_group_id": f"{topic}-g", "starting_position": "TRIM_HORIZON",
         "session_timeout_seconds": 6, "request_timeout_seconds": 10},
        lambda seq: f"p{seq % partitions}", produce, ordered=True,
        in_flight_bound=2 * batch_size * partitions,
        mapping_keys={**STREAM_KEYS, "batch_size": batch_size,
                      "maximum_batching_window_in_seconds": 0.2},
        knobs=dict(STREAM_KNOBS), diagnose=diagnose, offsets=offsets,
        close=lambda: producer.close(5))


def kafka_committed(server: Any, group: str) -> dict[int, int]:
    """Partition → the group's committed offset."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        answer = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in answer.items()}


def redis_kit(server: Any, streams: int = 3, batch_size: int = 10,
              visibility_timeout_seconds: int = 2, max_deliveries: int = 3) -> Kit:
    import redis

    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{n}" for n in range(streams)]
    client = redis.Redis.from_url(server.url)
    lock = threading.Lock()

    def produce(records: list[Produced]) -> None:
        with lock:
            pipe = client.pipeline(transaction=False)
            for r in records:
                pipe.xadd(r.lane, {"body": json.dumps(r.doc())})
            pipe.execute()

    return Kit(
        "redis",
        {"type": "redis_streams", "url": server.url, "streams": names,
         "consumer_group": f"{prefix}-g", "max_deliveries": max_deliveries,
         "block_milliseconds": 200,
         "visibility_timeout_seconds": visibility_timeout_seconds},
        lambda seq: names[seq % streams], produce, ordered=False, stream=False,
        in_flight_bound=2 * batch_size * streams,
        mapping_keys={**QUEUE_KEYS, "batch_size": batch_size,
                      "scaling_config": {"maximum_concurrency": streams}},
        knobs=dict(QUEUE_KNOBS), target_timeout_seconds=visibility_timeout_seconds,
        close=client.close)


def sqs_kit(server: Any, fifo: bool, batch_size: int = 10, groups: int = 4,
            visibility_timeout_seconds: int = 3) -> Kit:
    from tests.servers.sqs_server import REGION

    url = server.create_queue(fifo=fifo, visibility_timeout=visibility_timeout_seconds)
    client = server.client()

    def produce(records: list[Produced]) -> None:
        for start in range(0, len(records), 10):
            entries = []
            for n, r in enumerate(records[start:start + 10]):
                entry: dict[str, Any] = {"Id": str(n), "MessageBody": json.dumps(r.doc())}
                if fifo:
                    entry["MessageGroupId"] = r.lane
                entries.append(entry)
            reply = client.send_message_batch(QueueUrl=url, Entries=entries)
            assert not reply.get("Failed"), reply["Failed"]

    def diagnose(missing: list[str]) -> str:
        """Whether the queue still holds the missing records (esm never settled them) or
        not (the broker lost them): read after the daemons died and every message they
        held became visible again."""
        time.sleep(visibility_timeout_seconds + 1)
        present: set[str] = set()
        for _ in range(20):
            reply = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=60, WaitTimeSeconds=0)
            bodies = [json.loads(m["Body"]).get("id") for m in reply.get("Messages", [])]
            if not bodies:
                break
            present.update(str(b) for b in bodies)
        still = sorted(set(missing) & present)
        gone = sorted(set(missing) - present)
        return (f"sqs: {len(still)} missing record(s) still in the queue {still[:10]}, "
                f"{len(gone)} no longer in it {gone[:10]}")

    knobs = dict(QUEUE_KNOBS)
    if fifo:
        knobs["STOP_AT_FIRST_FAILURE"] = "1"
    return Kit(
        "sqs-fifo" if fifo else "sqs",
        {"type": "sqs", "queue_url": url, "endpoint_url": server.endpoint_url,
         "region": REGION, "backoff_on_failure": True, "max_receive_count": 3,
         "wait_time_seconds": 1},
        (lambda seq: f"g{seq % groups}") if fifo else (lambda seq: "queue"), produce,
        ordered=fifo, stream=False, in_flight_bound=2 * batch_size * 4,
        mapping_keys={**QUEUE_KEYS, "batch_size": batch_size,
                      "scaling_config": {"maximum_concurrency": 4}},
        knobs=knobs, target_timeout_seconds=visibility_timeout_seconds, diagnose=diagnose)


def _shard_checkpoint(server: Any, leases: str | None, tmp_path: Any) -> dict[str, Any]:
    if leases is None:
        return {"type": "sqlite", "path": str(tmp_path / "checkpoints.sqlite"),
                "lease_duration_seconds": 3}
    return {"type": "dynamodb", "table": leases, "endpoint_url": server.endpoint_url,
            "lease_duration_seconds": 3}


def dynamodb_kit(server: Any, tmp_path: Any, leases: str | None = None,
                 batch_size: int = 50) -> Kit:
    from tests.servers.moto_server import REGION

    table, arn = server.create_table_with_stream("NEW_IMAGE")
    client = server.client("dynamodb")

    def produce(records: list[Produced]) -> None:
        for r in records:  # one put each: the stream keeps their order
            client.put_item(TableName=table, Item={"id": {"S": r.id},
                                                    "doc": {"S": json.dumps(r.doc())}})

    return Kit(
        "dynamodb",
        {"type": "dynamodb_streams", "stream_arn": arn, "starting_position": "TRIM_HORIZON",
         "region": REGION, "endpoint_url": server.endpoint_url,
         "checkpoint": _shard_checkpoint(server, leases, tmp_path),
         "shard_discovery_interval_seconds": 1},
        lambda seq: "table", produce, ordered=True, in_flight_bound=2 * batch_size,
        mapping_keys={**STREAM_KEYS, "batch_size": batch_size,
                      "maximum_batching_window_in_seconds": 0.2},
        knobs=dict(STREAM_KNOBS))


def kinesis_kit(server: Any, tmp_path: Any, leases: str | None = None, shards: int = 2,
                keys: int = 4, batch_size: int = 50) -> Kit:
    from tests.servers.moto_server import REGION

    name, arn = server.create_kinesis_stream(shards)
    client = server.client("kinesis")

    def produce(records: list[Produced]) -> None:
        for start in range(0, len(records), 100):
            chunk = records[start:start + 100]
            reply = client.put_records(StreamName=name, Records=[
                {"Data": json.dumps(r.doc()).encode(), "PartitionKey": r.lane} for r in chunk])
            assert not reply.get("FailedRecordCount"), reply

    return Kit(
        "kinesis",
        {"type": "kinesis", "stream_arn": arn, "starting_position": "TRIM_HORIZON",
         "region": REGION, "endpoint_url": server.endpoint_url, "poll_interval_seconds": 0.2,
         "checkpoint": _shard_checkpoint(server, leases, tmp_path),
         "shard_discovery_interval_seconds": 1},
        lambda seq: f"k{seq % keys}", produce, ordered=True,
        in_flight_bound=2 * batch_size * shards,
        mapping_keys={**STREAM_KEYS, "batch_size": batch_size,
                      "maximum_batching_window_in_seconds": 0.2},
        knobs=dict(STREAM_KNOBS))


def rabbitmq_kit(server: Any, quorum: bool = False, queues: int = 2, batch_size: int = 10,
                 concurrency: int = 2) -> Kit:
    """Classic (or quorum) durable queues; each queue splits into `concurrency` slot lanes,
    so no order is promised (queue family). Each produced chunk is one transaction."""
    import pika

    from tests.servers.rabbitmq_server import PASSWORD

    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{n}" for n in range(queues)]
    arguments = {"x-queue-type": "quorum"} if quorum else None
    lock = threading.Lock()
    held: list[Any] = []  # the publishing connection, dropped when the broker drops it

    def channel() -> Any:
        if not held or not held[0].is_open:
            held[:] = [server.connection()]
            opened = held[0].channel()
            opened.tx_select()  # a chunk is in the queues, durably, once committed
            held.append(opened)
        return held[1]

    with server.connection() as connection:
        for name in names:
            connection.channel().queue_declare(name, durable=True, arguments=arguments)

    def produce(records: list[Produced]) -> None:
        with lock:
            try:
                publishing = channel()
                for r in records:
                    publishing.basic_publish("", r.lane, json.dumps(r.doc()), pika.BasicProperties(
                        message_id=r.id, delivery_mode=2, content_type="application/json"))
                publishing.tx_commit()
            except Exception:
                held.clear()
                raise

    def close() -> None:
        if held and held[0].is_open:
            held[0].close()

    prefetch = 2 * batch_size * concurrency  # the source's default, per queue
    return Kit(
        "rabbitmq-quorum" if quorum else "rabbitmq",
        {"type": "rabbitmq", "url": server.url, "queues": names, "max_deliveries": 3,
         "password_env": "ESM_CHAOS_RABBITMQ_PASSWORD", "heartbeat_seconds": 10},
        lambda seq: names[seq % queues], produce, ordered=False, stream=False,
        in_flight_bound=prefetch * queues,
        mapping_keys={**QUEUE_KEYS, "batch_size": batch_size,
                      "maximum_batching_window_in_seconds": 0.2,
                      "scaling_config": {"maximum_concurrency": concurrency}},
        knobs={**QUEUE_KNOBS, "RABBITMQ_PASSWORD": PASSWORD}, dead_letter_after=3,
        close=close)


def activemq_kit(server: Any, batch_size: int = 10, slots: int = 3, credit: int = 100) -> Kit:
    """One queue read by `slots` lanes. AWS takes no batchItemFailures from MQ mappings:
    a failed batch is retried whole (poison records raise), and a message whose delivery
    failed 3 times goes to the on-failure destination (`maximum_redeliveries` 2)."""
    import base64

    from connectors.activemq.sending import send_messages

    queue = f"chaos-{uuid.uuid4().hex[:8]}"

    def produce(records: list[Produced]) -> None:
        send_messages(server.url, queue, [
            {"messageType": "jms/text-message",
             "data": base64.b64encode(json.dumps(r.doc()).encode()).decode()}
            for r in records], user=None, password=None,
            timeout_seconds=3)  # a chunk sent to a broker killed meanwhile fails soon

    return Kit(
        "activemq",
        {"type": "activemq", "url": server.url, "queue": queue, "slots": slots,
         "credit": credit, "redelivery_delay_seconds": 0.2, "maximum_redeliveries": 2,
         "idle_timeout_seconds": 10},
        lambda seq: queue, produce, ordered=False, stream=False,
        in_flight_bound=credit + 2 * batch_size * slots,
        mapping_keys={"batch_size": batch_size, "maximum_batching_window_in_seconds": 0.2},
        knobs={"POISON_MODE": "raise", "ERROR_PER_MILLE": "20"}, dead_letter_after=3)
