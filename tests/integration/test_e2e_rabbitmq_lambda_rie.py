# ruff: noqa: F811  (pytest fixtures imported explicitly, per the harness convention)
"""`esm run` from a real RabbitMQ broker to the `lambda` target at AWS's Runtime Interface
Emulator, running an unmodified handler that reads the event with Powertools'
RabbitMQEvent data class and reports failed messages by messageId."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pika
import pytest

from tests.integration import lambda_e2e_support as support
from tests.integration.test_e2e_lambda_rie import Function
from tests.servers.lambda_rie_server import StartRie, lambda_rie  # noqa: F401
from tests.servers.rabbitmq_server import PASSWORD, RabbitMQServer, rabbitmq_server  # noqa: F401

pytestmark = pytest.mark.integration


def noticed_message_ids(path: Path) -> list[str]:
    return [m["basicProperties"]["messageId"] for notice in support.read_notices(path)
            for messages in notice["payload"]["rmqMessagesByQueue"].values()
            for m in messages]


def test_powertools_handler_reads_the_event_and_its_failures_are_dead_lettered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rabbitmq_server: RabbitMQServer,
        lambda_rie: StartRie) -> None:
    # Given 30 messages, every 7th asking the handler to fail it
    queue = f"rie-{tmp_path.name[-12:]}"
    bodies = {f"m{n}": "please fail" if n % 7 == 3 else f"ok {n}" for n in range(30)}
    bad = {message_id for message_id, body in bodies.items() if "fail" in body}
    with rabbitmq_server.connection() as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for message_id, body in bodies.items():
            channel.basic_publish("", queue, body, pika.BasicProperties(
                message_id=message_id, headers={"origin": "test"}, timestamp=1700000000))
    function = Function(lambda_rie, "rabbitmq_messages", tmp_path)
    failures = tmp_path / "failures.jsonl"
    mapping = {"name": "rie-rabbitmq",
               "source": {"type": "rabbitmq", "url": rabbitmq_server.url, "queues": [queue],
                          "password_env": "E2E_RABBITMQ_PASSWORD", "max_deliveries": 2},
               "batch_size": 10, "function_response_types": ["ReportBatchItemFailures"],
               "retry_backoff": support.FAST_RETRIES, "target": function.target(),
               "destination_config": support.file_destination(tmp_path)}
    monkeypatch.setenv("E2E_RABBITMQ_PASSWORD", PASSWORD)  # the daemon inherits it

    def ready() -> int:
        with rabbitmq_server.connection() as connection:
            return int(connection.channel().queue_declare(queue, passive=True)
                       .method.message_count)

    # When the daemon runs until every bad message is dead-lettered and nothing is left
    support.run_until(tmp_path, mapping,
                      lambda: set(noticed_message_ids(failures)) >= bad and ready() == 0,
                      lambda: f"noticed {noticed_message_ids(failures)}, want {sorted(bad)}")
    # Then each good message was processed once, each bad one twice, then dead-lettered
    assert sorted(function.outcomes("ok")) == sorted(set(bodies) - bad)
    assert Counter(function.outcomes("fail")) == dict.fromkeys(bad, 2)
    assert sorted(noticed_message_ids(failures)) == sorted(bad)
