# ruff: noqa: F811  (pytest fixtures imported explicitly, per the harness convention)
"""SqsDestination against a real SQS-compatible server (ElasticMQ)."""

from __future__ import annotations

import json
import threading

from connectors.sqs.destination import SqsDestination, SqsDestinationSettings
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.servers.sqs_server import CREDENTIALS, REGION, SqsServer, sqs_server  # noqa: F401


def test_notices_are_durable_in_the_queue_from_many_threads(sqs_server: SqsServer) -> None:
    url = sqs_server.create_queue()
    settings = SqsDestinationSettings(
        queue_url=url, endpoint_url=sqs_server.endpoint_url, region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"])
    destination = SqsDestination(settings, ConnectorContext("m", threading.Event(),
                                                            SystemClock()))
    threads = [threading.Thread(target=destination.send, args=({"n": i}, []))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = []
    client = sqs_server.client()
    while len(got) < 8:
        messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=1).get("Messages") or []
        if not messages:
            break
        got += [json.loads(m["Body"])["n"] for m in messages]
    assert sorted(got) == list(range(8))
    destination.close()
