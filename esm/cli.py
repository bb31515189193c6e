"""The `esm` command: run, validate, test-filter, demo, status, redrive, import.

Exit codes (DESIGN §9): 0 ok, 1 runtime failure, 2 bad input. Bad configuration prints
every problem, one per line, and never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from esm import __version__
from esm.config.types import Config
from esm.errors import ConfigError, EsmError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    code: int = args.handler(args)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esm", description=(
        "Event source mappings outside AWS: read a queue or stream, filter, batch, "
        "invoke a function, handle failures, never lose a record."))
    parser.add_argument("--version", action="version", version=f"esm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the mappings in CONFIG files or directories")
    run.add_argument("config", nargs="+", metavar="CONFIG")
    run.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    run.add_argument("--log-format", choices=("text", "json"), default=None)
    run.set_defaults(handler=_cmd_run)

    validate = commands.add_parser("validate", help="check CONFIG files; exit 2 if invalid")
    validate.add_argument("config", nargs="+", metavar="CONFIG")
    validate.set_defaults(handler=_cmd_validate)

    test_filter = commands.add_parser(
        "test-filter", help="does EVENT match PATTERN? exit 0 match, 1 no match, 2 invalid")
    test_filter.add_argument("--pattern", required=True, help="filter pattern (JSON)")
    test_filter.add_argument("--event", required=True, help="record document (JSON)")
    test_filter.set_defaults(handler=_cmd_test_filter)

    demo = commands.add_parser("demo", help="run a self-contained demo mapping and exit")
    demo.add_argument("--verbose", action="store_true", help="show the daemon's log")
    demo.set_defaults(handler=_cmd_demo)

    status = commands.add_parser("status", help="print a running daemon's mappings as a table")
    status.add_argument("config", nargs="*", metavar="CONFIG",
                        help="take the address from these files' server.listen")
    status.add_argument("--url", default=None,
                        help="the daemon's HTTP server (default http://127.0.0.1:9102)")
    status.add_argument("--json", action="store_true", help="print the raw JSON instead")
    status.set_defaults(handler=_cmd_status)

    from esm.aws_import.command import add_parser as add_import
    from esm.redrive.cli import add_parser as add_redrive

    add_redrive(commands, _cmd_redrive)
    add_import(commands, _cmd_import)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from esm.config.loading import load_config
    from esm.ops import logs
    from esm.runtime.daemon import Daemon

    config = _load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    from esm.runtime.systemd import SystemdNotifier

    redactor = logs.configure(args.log_level or config.logging.level,
                              args.log_format or config.logging.format,
                              secrets=logs.secrets_in(config))
    env = dict(os.environ)  # read once: a SIGHUP reload substitutes the same variables

    def reload_config() -> Config:
        new = load_config(args.config, env)
        redactor.add(logs.secrets_in(new))
        return new

    try:
        daemon = Daemon(config, notifier=SystemdNotifier.from_env(env),
                        config_loader=reload_config)
        return daemon.run()
    except ConfigError as exc:  # a connector refused its settings at build time
        _print_problems(exc)
        return EXIT_BAD_INPUT
    except OSError as exc:  # e.g. the listen address is taken
        print(f"esm: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _load_or_report(paths: Sequence[str]) -> Config | None:
    """The configuration, or None after printing every problem (never a traceback)."""
    from esm.config.loading import load_config

    try:
        return load_config(paths, os.environ)
    except ConfigError as exc:
        _print_problems(exc)
        return None


def _cmd_validate(args: argparse.Namespace) -> int:
    config = _load_or_report(args.config)
    if config is None:
        return EXIT_BAD_INPUT
    names = ", ".join(m.name for m in config.mappings) or "no mappings"
    print(f"ok: {len(config.mappings)} mapping(s): {names}")
    return EXIT_OK


def _cmd_test_filter(args: argparse.Namespace) -> int:
    from esm.filtering import test_filter_cli

    return test_filter_cli(args.pattern, args.event)


def _cmd_demo(args: argparse.Namespace) -> int:
    from esm.demo import run_demo

    return run_demo(verbose=args.verbose)


def _cmd_status(args: argparse.Namespace) -> int:
    import json

    from esm.config.loading import load_config
    from esm.ops.status_table import StatusUnavailable, fetch_mappings, render_table, url_for

    url = args.url or "http://127.0.0.1:9102"
    if args.config and not args.url:
        try:
            url = url_for(load_config(args.config, os.environ).server.listen)
        except ConfigError as exc:
            _print_problems(exc)
            return EXIT_BAD_INPUT
    try:
        mappings = fetch_mappings(url)
    except StatusUnavailable as exc:
        print(f"esm: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(mappings, indent=1) if args.json else render_table(mappings))
    return EXIT_OK


def _cmd_redrive(args: argparse.Namespace) -> int:
    from esm.config.loading import load_config
    from esm.ops import logs
    from esm.redrive.cli import run_redrive

    logs.configure("WARNING")
    try:
        return run_redrive(args, load_config(args.config, os.environ))
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_BAD_INPUT
    except (OSError, EsmError) as exc:
        print(f"esm redrive: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _cmd_import(args: argparse.Namespace) -> int:
    from esm.aws_import.command import run_import

    return run_import(args)


def _print_problems(exc: ConfigError) -> None:
    print(f"esm: invalid configuration ({len(exc.problems)} problem(s)):", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
