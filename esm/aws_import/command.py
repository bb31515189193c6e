"""`esm import FILE… [--endpoint ARN=URL …] [--target lambda|http|python] [-o OUT.yaml]`.

Writes the configuration to OUT (or stdout); on stderr lists every property not carried
over and the variables to set, then checks the result the way `esm validate` does (with
each variable set to its example) and prints what that check finds. Exit codes: 0 written,
2 a file could not be read or held no mapping, or a bad option.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from esm.aws_import.arns import Endpoints
from esm.aws_import.importer import ImportResult, import_files
from esm.aws_import.template import UnreadableFile
from esm.aws_import.translate.translation import Options

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_parser(commands: Any, handler: Callable[[argparse.Namespace], int]) -> None:
    parser = commands.add_parser(
        "import", help="turn AWS event source mapping definitions (CloudFormation/SAM "
                       "templates, aws lambda JSON) into esm YAML")
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--endpoint", action="append", default=[], metavar="ARN=URL",
                        help="use URL for the resource ARN (or template logical ID): a queue "
                             "ARN to an ElasticMQ URL, an MSK cluster to host:port, a "
                             "function to a Lambda emulator")
    parser.add_argument("--target", choices=("lambda", "http", "python"), default="lambda",
                        help="what esm invokes (default: the same Lambda function)")
    parser.add_argument("--handler", dest="python_handler", metavar="MODULE:FUNCTION",
                        help="python target: the handler (default: the function's Handler)")
    parser.add_argument("--url", help="http target: the URL events are POSTed to")
    parser.add_argument("-o", "--output", metavar="OUT.yaml", help="default: stdout")
    parser.set_defaults(handler=handler)


def run_import(args: argparse.Namespace) -> int:
    try:
        endpoints = Endpoints.parse(args.endpoint)
        options = Options(args.target, args.python_handler, args.url, endpoints)
        result = import_files(args.files, options)
    except (UnreadableFile, ValueError) as exc:
        print(f"esm import: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(result.text)
    else:
        sys.stdout.write(result.text)
        sys.stdout.flush()  # the report on stderr comes after the YAML, not inside it
    _report(result, args.output or "stdout")
    return EXIT_OK


def _report(result: ImportResult, where: str) -> None:
    err = sys.stderr
    print(f"esm import: {len(result.mappings)} mapping(s) written to {where}", file=err)
    for note in result.notes:
        print(f"  {note}", file=err)
    if result.variables:
        names = ", ".join(v.name for v in result.variables)
        print(f"  set before esm run: {names}", file=err)
    for problem in check(result):
        print(f"  esm validate (variables set to their examples): {problem}", file=err)


def check(result: ImportResult) -> list[str]:
    """What `esm validate` says of the output with every variable set to its example."""
    from esm.config.loading import validate_files

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "imported.yaml")
        with open(path, "w", encoding="utf-8") as out:
            out.write(result.text)
        env = {**os.environ, **result.example_environment()}
        return [p.replace(path, "output") for p in validate_files([path], env)]
