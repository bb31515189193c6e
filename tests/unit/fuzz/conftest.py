"""Hypothesis profiles for the property-based tests in this package.

- `quick` (the default): a moderate number of examples per test, derandomized (the same examples on
  every run, so CI is reproducible) and without the example database (nothing is written
  to `.hypothesis/`). The whole package stays within about 30 s.
- `long`: `HYPOTHESIS_PROFILE=long` for a deep run: many more examples, random each run,
  failures kept in `.hypothesis/` (ignored by git) and replayed first next time.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "quick", max_examples=60, derandomize=True, database=None, deadline=None,
    print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=3000, derandomize=False, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The pattern and payload strategies are large trees; Hypothesis warns when it prints
    # one, which says nothing about the code under test.
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.filterwarnings(
                "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"))
