"""Dependency rules of DESIGN §2 / STYLE rule 2, checked by parsing every import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_LIBRARIES = {"kafka", "redis", "boto3", "botocore", "urllib3", "requests", "fakeredis"}
# The core's leaves import nothing from esm (DESIGN §2).
LEAVES = {"records", "interfaces", "errors", "clock"}
PACKAGES = {"esm", "connectors", "connectors.sources", "connectors.targets",
            "connectors.destinations"}
CONNECTOR_MAY_IMPORT = {"esm.interfaces", "esm.records", "esm.errors", "esm.clock"}
SHARD_SOURCES = {"dynamodb", "kinesis", "shards"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in PACKAGES:  # `from connectors.sources import sqs_ops`
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", python_files("esm"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_connector_and_no_client_library(path: Path):
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top != "connectors", f"{path.name} imports connector module {name}"
        assert top not in CLIENT_LIBRARIES, f"{path.name} imports client library {name}"


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_core_leaves_import_nothing_else_from_esm(leaf: str):
    allowed = {f"esm.{name}" for name in LEAVES}
    for name in imports_of(ROOT / "esm" / f"{leaf}.py"):
        if name.startswith("esm"):
            assert name in allowed, f"esm/{leaf}.py imports {name}"


@pytest.mark.parametrize("path", python_files("connectors"), ids=lambda p: str(p.relative_to(ROOT)))
def test_connectors_import_only_the_core_contracts_and_never_each_other(path: Path):
    own_family = path.stem.split("_")[0]
    for name in imports_of(path):
        if name.startswith("esm"):
            assert name in CONNECTOR_MAY_IMPORT, f"{path} imports {name}"
        if name.startswith("connectors."):
            target = name.split(".")[-1]
            # shared helpers: connectors/aws.py (boto3 factory); a connector's own helper
            # modules share its name prefix (kafka_settings.py beside kafka.py); the shard
            # model (shards*.py) is shared by the DynamoDB Streams and Kinesis sources.
            shared = target == "aws" or (target.split("_")[0] == "shards"
                                         and own_family in SHARD_SOURCES)
            assert shared or target.split("_")[0] == own_family, \
                f"{path} imports another connector: {name}"
