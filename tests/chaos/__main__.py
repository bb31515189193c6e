"""`python -m tests.chaos [pytest args]`: the long damage run (20+ kills per source, 20
consecutive Kafka churn runs), ending with the table of every scenario. `--short` runs the
short version (what the default suite runs). The seed is ESM_CHAOS_SEED, else drawn and
printed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def main(argv: list[str]) -> int:
    short = "--short" in argv
    args = [a for a in argv if a != "--short"]
    os.environ["ESM_CHAOS"] = "short" if short else "long"
    here = Path(__file__).resolve().parent
    return int(pytest.main(["-p", "no:cacheprovider", "-q", "--timeout", "1800",
                            "--rootdir", str(here.parents[1]), str(here), *args]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
