"""Helpers for the `esm import` tests: import a fixture, validate what came out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from esm.aws_import.arns import Endpoints
from esm.aws_import.importer import ImportResult, import_files
from esm.aws_import.translate.translation import Options
from esm.config.loading import validate_files

FIXTURES = Path(__file__).parent / "aws_import_fixtures"


def imported(name: str, *, target: str = "lambda", handler: str | None = None,
             url: str | None = None, endpoints: dict[str, str] | None = None) -> ImportResult:
    options = Options(target, handler, url, Endpoints(dict(endpoints or {})))
    return import_files([str(FIXTURES / name)], options)


def validation_problems(result: ImportResult, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What `esm validate` says of the output, each variable set to its example. Secrets
    (`password_env`) are read by the Kafka connector from the process environment."""
    for variable in result.variables:
        if variable.secret:
            monkeypatch.setenv(variable.name, variable.example)
    path = tmp_path / "imported.yaml"
    path.write_text(result.text)
    return validate_files([str(path)], result.example_environment())


def mapping(result: ImportResult, name: str) -> dict[str, Any]:
    found = [m for m in result.mappings if m["name"] == name]
    assert found, f"no mapping {name!r} in {[m['name'] for m in result.mappings]}"
    return found[0]


def notes(result: ImportResult) -> list[str]:
    return [str(note) for note in result.notes]


def loaded(result: ImportResult) -> Any:
    return yaml.safe_load(result.text)
