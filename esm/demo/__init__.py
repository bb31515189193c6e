"""`esm demo`: a bundled mapping that needs no external service.

A memory stream source holds 24 records on two lanes: orders, pings (filtered out), one
"flaky" order the handler reports in `batchItemFailures` the first time (partial failure,
then a retry from that record on) and one "poison" order that always raises (the batch is
bisected until the poison record stands alone; after its retries it goes to a file
destination). The daemon runs until everything is settled, then the demo prints what
happened, with the metrics, and exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from esm.config.loading import load_config
from esm.demo import handlers
from esm.ops import logs
from esm.runtime.daemon import Daemon

log = logging.getLogger(__name__)


def demo_config_path() -> Path:
    return Path(str(resources.files("esm.demo").joinpath("demo.yaml")))


def run_demo(verbose: bool = False) -> int:
    logs.configure("INFO" if verbose else "WARNING")
    handlers.reset()
    with tempfile.TemporaryDirectory(prefix="esm-demo-") as workdir:
        env = dict(os.environ, ESM_DEMO_DIR=workdir)
        config = load_config([str(demo_config_path())], env)
        daemon = Daemon(config, reader_options={"lag_interval_seconds": 0.05})
        daemon.start()
        try:
            finished = daemon.run_until_idle(timeout_seconds=60)
        finally:
            daemon.shutdown()
        dead_letters = _read_notices(Path(workdir) / "dead-letters.jsonl")
        _print_summary(daemon, dead_letters)
    if not finished:
        print("demo: the mapping did not settle within 60 s", file=sys.stderr)
        return 1
    return 0


def _read_notices(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _print_summary(daemon: Daemon, notices: list[dict[str, Any]]) -> None:
    mapping = daemon.config.mappings[0]
    counts = daemon.metrics.for_mapping(mapping.name).snapshot()
    print(f"esm demo: mapping {mapping.name!r} (memory source -> python handler "
          f"{mapping.target.settings.handler})")
    print(f"  batch_size={mapping.batch_size}, bisect_batch_on_function_error="
          f"{mapping.bisect_batch_on_function_error}, maximum_retry_attempts="
          f"{mapping.maximum_retry_attempts}, filter: {mapping.filter_patterns[0]}")
    print()
    print("what happened:")
    print(f"  records polled                 {counts['polled']:.0f}")
    print(f"  filtered out (pings)           {counts['filtered_out']:.0f}")
    print(f"  handler invocations            {counts['invocations']:.0f}")
    print(f"  records invoked (with retries) {counts['invoked']:.0f}")
    print(f"  records in failed invocations  {counts['failed_invoke']:.0f}")
    print(f"  retries                        {counts['retries']:.0f}")
    print(f"  bisections                     {counts['bisections']:.0f}")
    print(f"  committed                      {counts['committed']:.0f}")
    print(f"  sent to on-failure destination {counts['destination_delivered']:.0f}")
    print()
    print("handler's view:")
    for line in handlers.journal():
        print(f"  {line}")
    print()
    for notice in notices:
        ctx = notice.get("requestContext", {})
        payload = notice.get("payload") or {}
        records = payload.get("Records", []) if isinstance(payload, dict) else []
        bodies = [r.get("body") for r in records]
        print(f"dead letter: condition={ctx.get('condition')} "
              f"approximateInvokeCount={ctx.get('approximateInvokeCount')} records={bodies}")
    print()
    print("metrics (excerpt of /metrics):")
    from prometheus_client import generate_latest

    for line in generate_latest(daemon.registry).decode().splitlines():
        if line.startswith("esm_") and "_created" not in line and "_bucket" not in line:
            print(f"  {line}")
