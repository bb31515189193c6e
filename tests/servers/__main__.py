"""`python3 -m tests.servers install [NAME...]`: install the real test servers ahead of a
run (every `tests/servers/<name>_server.py` by default). Exits non-zero, naming the server,
if one cannot be installed."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(p.stem.removesuffix("_server") for p in here.glob("*_server.py"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "install":
        print(f"usage: python3 -m tests.servers install [{' | '.join(available())} ...]",
              file=sys.stderr)
        return 2
    names = argv[1:] or available()
    failed = []
    for name in names:
        started = time.monotonic()
        try:
            module = importlib.import_module(f"tests.servers.{name}_server")
            module.ensure_installed()
        except Exception as exc:
            print(f"tests.servers: cannot install {name}: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        print(f"tests.servers: {name} ready ({time.monotonic() - started:.0f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
