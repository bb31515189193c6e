"""`esm run` end to end with the in-process memory source: no broker needed.

The daemon runs as a subprocess (`python -m esm.cli run CONFIG`); the tests talk to it only
through its admin HTTP server, signals, exit code, output, and the handler's journal.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import (
    REPO_ROOT,
    DaemonProcess,
    Journal,
    daemon_env,
    missing,
    python_target,
    run_cli,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

MAPPING = "e2e-memory"


def memory_mapping(bodies: list[dict[str, Any]], *, lanes: int = 2,
                   timeout_seconds: float = 3) -> dict[str, Any]:
    return {"name": MAPPING,
            "source": {"type": "memory", "lanes": lanes,
                       "records": [json.dumps(body) for body in bodies]},
            "batch_size": 10, "function_response_types": ["ReportBatchItemFailures"],
            "target": python_target(timeout_seconds)}


def test_run_serves_health_readiness_metrics_and_mapping_state(tmp_path: Path) -> None:
    # Given a memory mapping with 50 records
    ids = [f"m{n}" for n in range(50)]
    config = write_config(tmp_path, [memory_mapping([{"id": i} for i in ids])])
    journal = Journal(tmp_path / "journal.jsonl")
    # When esm run processes them
    with DaemonProcess(config, daemon_env(journal.path), tmp_path / "daemon.log") as daemon:
        daemon.wait_ready()
        wait_until(lambda: set(journal.ok_ids()) == set(ids), 30,
                   lambda: missing(ids, journal.ok_ids()))
        label = f"{{mapping={MAPPING}}}"
        wait_until(lambda: daemon.metrics().get(f"esm_committed_events_total{label}") == 50, 10,
                   lambda: f"committed never reached 50: {daemon.metrics()}")
        # Then the probes answer 200, /metrics has the esm_* series, /mappings says Enabled
        assert daemon.get("/healthz")[0] == 200
        assert daemon.get("/readyz")[0] == 200
        metrics = daemon.metrics()
        assert metrics[f"esm_polled_events_total{label}"] == 50
        assert metrics[f"esm_invoked_events_total{label}"] == 50
        assert metrics[f"esm_mapping_up{label}"] == 1
        assert f"esm_invocation_duration_seconds_count{label}" in metrics
        [state] = daemon.mappings()
        assert (state["name"], state["state"], state["ready"]) == (MAPPING, "Enabled", True)
        assert state["lastProcessingResult"] == "OK"
        # And SIGTERM stops it cleanly
        daemon.terminate()
        assert daemon.wait_exit(20) == 0, daemon.log_tail()
    assert sorted(journal.ok_ids()) == sorted(ids)  # each record exactly once


def test_sigterm_mid_batch_lets_the_batch_finish_and_exits_0_within_the_drain_budget(
        tmp_path: Path) -> None:
    # Given a slow handler (3 s per batch) and a 10 s drain budget
    ids = ["slow-1", "slow-2", "slow-3"]
    config = write_config(tmp_path, [memory_mapping([{"id": i} for i in ids], lanes=1,
                                                    timeout_seconds=8)],
                          shutdown_timeout_seconds=10)
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="3")
    with DaemonProcess(config, env, tmp_path / "daemon.log") as daemon:
        daemon.wait_ready()
        wait_until(lambda: bool(journal.lines("start")), 30,
                   lambda: f"the handler never started a batch\n{daemon.log_tail()}")
        assert journal.ok_ids() == []  # the batch is mid-way
        # When SIGTERM arrives mid-batch
        signalled = time.monotonic()
        daemon.terminate()
        code = daemon.wait_exit(10 + 5)
        print(f"\nSIGTERM to exit: {time.monotonic() - signalled:.2f}s (handler takes 3 s)")
    # Then the in-flight batch finished and the daemon exited 0, drained
    assert code == 0, daemon.log_tail()
    assert sorted(journal.ok_ids()) == ids
    log = daemon.log_path.read_text()
    assert "received SIGTERM" in log and "esm stopped" in log
    assert "did not drain in time" not in log and "Traceback" not in log


def test_bad_config_exits_2_naming_each_problem_without_a_traceback(tmp_path: Path) -> None:
    # Given a config with two mistakes in the first mapping
    mapping = memory_mapping([{"id": "x"}])
    mapping.update(batch_size=0, maximum_retry_atempts=3)
    config = write_config(tmp_path, [mapping])
    # When esm run is given it
    result = run_cli("run", str(config), timeout_seconds=60)
    # Then it exits 2 with one `FILE: mappings[0]...` line per problem and no traceback
    assert result.returncode == 2, result.stderr
    problems = sorted(line.strip() for line in result.stderr.splitlines()
                      if line.strip().startswith(f"{config}: mappings[0]"))
    assert len(problems) == 2, result.stderr
    batch_size, unknown = problems  # "." sorts before ":"
    assert batch_size.startswith(f"{config}: mappings[0].batch_size: must be 1")
    assert unknown.startswith(f"{config}: mappings[0]: unknown key 'maximum_retry_atempts'")
    assert "did you mean 'maximum_retry_attempts'" in unknown
    assert "Traceback" not in result.stderr + result.stdout


def needs_environment(example: Path) -> bool:
    """True when the file uses `${VAR}` with no default: it depends on its deployment."""
    return re.search(r"\$\{\w+\}", example.read_text()) is not None


# Examples that stand alone (validating reads no server, only the file and its defaults).
EXAMPLES = [p for p in sorted((REPO_ROOT / "config").glob("*.yaml")) if not needs_environment(p)]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_validate_accepts_every_self_contained_example_config(example: Path) -> None:
    # Given an example from config/ / When esm validate checks it
    result = run_cli("validate", str(example))
    # Then it exits 0 and names its mappings
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: "), result.stdout


def test_there_are_self_contained_examples_to_validate() -> None:
    assert {"demo.yaml", "sqs.yaml"} <= {p.name for p in EXAMPLES}


def test_demo_runs_to_completion_and_dead_letters_the_poison_order() -> None:
    # Given nothing but esm / When `esm demo` runs
    result = run_cli("demo", timeout_seconds=90)
    # Then it exits 0 after showing the poison record's dead letter
    assert result.returncode == 0, result.stderr
    assert "dead letter: condition=RetryAttemptsExhausted" in result.stdout
    assert '"poison": true' in result.stdout
