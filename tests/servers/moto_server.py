"""moto's standalone server as the DynamoDB, DynamoDB Streams, Kinesis and S3 test server.

Why moto: one process speaks all four services (DynamoDB Local has no Kinesis or S3), its
DynamoDB Streams and Kinesis answer GetShardIterator (TRIM_HORIZON, LATEST,
AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP) and GetRecords, and Kinesis SplitShard closes the
parent and lists its children, which the resharding tests need. Its state lives in memory.

Installed from PyPI (`moto[server]`) with pip; run as `python -m moto.server`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.common import ServerProcess, ServerUnavailable, free_port

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("moto", "flask", "flask_cors"))


def ensure_installed() -> None:
    """pip install moto[server] once (idempotent); ServerUnavailable if that fails."""
    if _installed():
        return
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "moto[server]>=5.0"],
                            capture_output=True, text=True, timeout=600)
    importlib.invalidate_caches()
    if result.returncode != 0 or not _installed():
        raise ServerUnavailable("could not pip install moto[server]:\n"
                                + (result.stdout + result.stderr)[-2000:])


class MotoServer(ServerProcess):
    """One moto server process on 127.0.0.1:<free port>."""

    name = "moto server"

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkdtemp(prefix="esm-moto-")) / "server.log"

    def start(self) -> None:
        """Start (again, on the same port). moto keeps state in memory: a restart loses it."""
        ensure_installed()
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.launch(command, self.log_path, startup_seconds=60)

    def client(self, service: str, **config: Any) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            **CREDENTIALS, **config)

    def create_table_with_stream(self, view: str = "NEW_AND_OLD_IMAGES") -> tuple[str, str]:
        """A fresh table keyed by `id` (S) with a stream; returns (table name, stream ARN)."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        answer = self.client("dynamodb").create_table(
            TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
        return name, str(answer["TableDescription"]["LatestStreamArn"])

    def create_kinesis_stream(self, shards: int = 1) -> tuple[str, str]:
        """A fresh Kinesis stream; returns (name, ARN)."""
        name = f"s-{uuid.uuid4().hex[:12]}"
        kinesis = self.client("kinesis")
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        return name, str(arn["StreamARN"])

    def create_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A running moto server for the session. Fails (never skips) when it cannot start."""
    server = MotoServer()
    try:
        server.start()
    except ServerUnavailable as exc:
        server.stop()
        pytest.fail(f"moto test server unavailable: {exc}", pytrace=False)
    yield server
    server.stop()
