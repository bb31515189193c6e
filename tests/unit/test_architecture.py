"""Dependency and layout rules of DESIGN §2 / STYLE rule 2, checked by parsing every import.

- the core (`esm/`) imports no connector and no client library;
- the core's leaves (`records`, `interfaces`, `errors`, `clock`) import nothing else of esm;
- a connector package imports from esm only the seams, from `connectors` only itself and
  the shared helpers (`connectors.aws.clients` for AWS connectors, `connectors.shards` for
  the shard streams, `connectors.counting` for queues whose broker counts every return,
  `connectors.holding` for queues that keep what a replica holds):
  one broker's package never imports another's;
- every package says in its docstring what lives there, and no folder holds more than 12
  modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_LIBRARIES = {"kafka", "redis", "boto3", "botocore", "urllib3", "requests", "fakeredis"}
LEAVES = {"records", "interfaces", "errors", "clock"}
CONNECTOR_MAY_IMPORT = {"esm.interfaces", "esm.records", "esm.errors", "esm.clock"}
# Shared connector helpers: which connector packages may import them.
SHARED_HELPERS = {
    "connectors.aws.clients": {"aws", "sqs", "shards", "dynamodb_streams", "kinesis"},
    "connectors.shards": {"dynamodb_streams", "kinesis"},
    "connectors.counting": {"sqs", "activemq"},
    "connectors.holding": {"sqs", "redis"},
}
MAX_MODULES_PER_FOLDER = 12


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported by `path` (`from a.b import c` counts `a.b.c` too,
    so importing a module out of a package is seen as that module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def package_dirs() -> list[Path]:
    return sorted({p.parent for top in ("esm", "connectors") for p in python_files(top)})


@pytest.mark.parametrize("path", python_files("esm"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_connector_and_no_client_library(path: Path) -> None:
    for name in imports_of(path):
        top = name.split(".")[0]
        assert top != "connectors", f"{path.name} imports connector module {name}"
        assert top not in CLIENT_LIBRARIES, f"{path.name} imports client library {name}"


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_core_leaves_import_nothing_else_from_esm(leaf: str) -> None:
    for name in imports_of(ROOT / "esm" / f"{leaf}.py"):
        if name == "esm" or name.startswith("esm."):
            assert name.split(".")[1:2] and name.split(".")[1] in LEAVES, \
                f"esm/{leaf}.py imports {name}"


def _connector_package(path: Path) -> str:
    return path.relative_to(ROOT / "connectors").parts[0]


def _may_import(own: str, name: str) -> bool:
    parts = name.split(".")
    if len(parts) < 2 or parts[1] == own:
        return True
    return any((name == helper or name.startswith(helper + ".")) and own in users
               for helper, users in SHARED_HELPERS.items())


@pytest.mark.parametrize("path", [p for p in python_files("connectors")
                                  if p.parent != ROOT / "connectors"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_connectors_import_only_the_core_seams_and_never_each_other(path: Path) -> None:
    own = _connector_package(path)
    for name in imports_of(path):
        if name == "esm" or name.startswith("esm."):
            assert any(name == seam or name.startswith(seam + ".")
                       for seam in CONNECTOR_MAY_IMPORT), f"{path} imports {name}"
        if name.startswith("connectors."):
            assert _may_import(own, name), f"{path} imports another connector: {name}"


def test_the_architecture_test_sees_a_cross_connector_import() -> None:
    # The rule must catch what it forbids: the Kafka destination importing Redis code.
    assert not _may_import("kafka", "connectors.redis.entries")
    assert not _may_import("sqs", "connectors.shards.model")
    assert _may_import("kinesis", "connectors.shards.model")
    assert _may_import("sqs", "connectors.aws.clients")
    assert _may_import("kafka", "connectors.kafka.event")


@pytest.mark.parametrize("folder", package_dirs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_package_says_what_lives_there_and_stays_small(folder: Path) -> None:
    init = folder / "__init__.py"
    assert init.is_file(), f"{folder.relative_to(ROOT)} is not a package"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring saying what it holds"
    modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES_PER_FOLDER, \
        f"{folder.relative_to(ROOT)} holds {len(modules)} modules"
