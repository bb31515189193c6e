"""`tests/run.sh` installs every real server through `python -m tests.servers install`, which
calls each harness's `ensure_installed`; a harness without one stops the whole run."""

from __future__ import annotations

import importlib

import pytest

from tests.servers.__main__ import available


@pytest.mark.parametrize("name", available())
def test_every_server_harness_can_be_installed_ahead_of_a_run(name: str) -> None:
    module = importlib.import_module(f"tests.servers.{name}_server")
    assert callable(getattr(module, "ensure_installed", None)), \
        f"tests/servers/{name}_server.py has no ensure_installed()"
