"""House rules a machine can check (STYLE rules 1 and 3): ruff (with its complexity check)
over the whole tree, and mypy --strict over esm/ and connectors/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing_in_esm_and_connectors():
    result = run("mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr
