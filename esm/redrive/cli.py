"""`esm redrive CONFIG... --mapping NAME`: the command-line side of esm.redrive.replay.

Exit codes (DESIGN §9): 0 every notice replayed (or already done), 1 some failed again or
the run was interrupted, 2 bad input (unknown mapping, unsupported destination, bad config).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from esm.config.types import Config, MappingConfig
from esm.errors import ConfigError
from esm.redrive.replay import Replay, redrive, source_replay, target_replay
from esm.redrive.sources import notices_for
from esm.redrive.state import DoneLog


def add_parser(commands: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    cmd = commands.add_parser(
        "redrive", help="replay on-failure notices to the target or source",
        description="Replay the payloads of a mapping's on-failure notices (destinations "
                    "file, redis_stream, sqs, kafka) to its target or back to its source. "
                    "Replayed notice ids go to the --state file, so a re-run skips them; "
                    "SQS notices are deleted and Kafka offsets (group esm-redrive-<mapping>) "
                    "committed only after their replay succeeded.")
    cmd.add_argument("config", nargs="+", metavar="CONFIG")
    cmd.add_argument("--mapping", required=True, help="the mapping whose notices to replay")
    cmd.add_argument("--file", default=None,
                     help="read notices from this JSON-lines file instead of the destination")
    cmd.add_argument("--to", choices=("target", "source"), default="target",
                     help="invoke the mapping's target (default), or write the records "
                          "back to the source (sources memory, sqs, kafka, redis_streams, "
                          "rabbitmq)")
    cmd.add_argument("--dry-run", action="store_true", help="count, replay nothing")
    cmd.add_argument("--state", default=None, help="progress file of replayed notice ids "
                     "(default: esm-redrive-<mapping>.state in the current directory)")
    cmd.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    cmd.set_defaults(handler=handler)


def run_redrive(args: argparse.Namespace, config: Config) -> int:
    mapping = _mapping(config, args.mapping)
    entries = notices_for(mapping, os.environ, args.file)
    replay, close = _replay_for(mapping, args)
    done = DoneLog(args.state or f"esm-redrive-{mapping.name}.state")
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    try:
        summary = redrive(entries, replay, done, dry_run=args.dry_run, stop=stop,
                          progress_stream=sys.stderr if show else None)
    finally:
        signal.signal(signal.SIGINT, previous)
        done.close()
        close()
    print("\n".join(summary.lines()))
    return 1 if summary.failed or summary.interrupted else 0


def _mapping(config: Config, name: str) -> MappingConfig:
    for mapping in config.mappings:
        if mapping.name == name:
            return mapping
    names = ", ".join(m.name for m in config.mappings) or "none"
    raise ConfigError(f"--mapping: no mapping named {name!r} (mappings: {names})")


def _replay_for(mapping: MappingConfig,
                args: argparse.Namespace) -> tuple[Replay, Callable[[], None]]:
    if args.dry_run:
        return (lambda _event: None), (lambda: None)
    return target_replay(mapping) if args.to == "target" else source_replay(mapping)
