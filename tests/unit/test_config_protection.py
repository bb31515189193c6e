"""esm.config.loading: the target-protection keys (rate_limit, rate_limit_group, circuit_breaker,
lane_lag_metrics) parse into values, and bad ones fail with messages naming the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

from esm.config.loading import load_config, validate_files
from esm.config.types import CircuitBreaker, RateLimit

MAPPING = """\
  - name: {name}
    source: {{type: memory}}
    target: {{type: python, handler: "esm.demo.handlers:handle"}}
"""


def write(tmp_path: Path, *mappings: str) -> str:
    path = tmp_path / "esm.yaml"
    path.write_text("mappings:\n" + "".join(textwrap.indent(textwrap.dedent(m), "    ")
                                           for m in mappings))
    return str(path)


def mapping(name: str, extra: str = "") -> str:
    return MAPPING.format(name=name) + textwrap.indent(textwrap.dedent(extra), "    ")


def test_protection_keys_become_config_values(tmp_path: Path) -> None:
    file = write(tmp_path, mapping("orders", """\
        rate_limit: {records_per_second: 500, invocations_per_second: 20, burst: 5}
        circuit_breaker: {failure_threshold: 3, probe_interval_seconds: 10}
        lane_lag_metrics: true
    """))
    (config,) = load_config([file], {}).mappings
    assert config.rate_limit == RateLimit(500, 20, 5)
    assert config.circuit_breaker == CircuitBreaker(3, 10.0)
    assert config.lane_lag_metrics is True


def test_defaults_protect_nothing(tmp_path: Path) -> None:
    (config,) = load_config([write(tmp_path, mapping("orders"))], {}).mappings
    assert (config.rate_limit, config.circuit_breaker, config.lane_lag_metrics) == (
        None, None, False)


def test_bad_values_are_reported_at_once_with_their_paths(tmp_path: Path) -> None:
    file = write(tmp_path, mapping("orders", """\
        rate_limit: {invocations_per_second: 0, burst: 0, records_per_sec: 5}
        circuit_breaker: {failure_threshold: 0, probe_interval_seconds: -1}
    """), mapping("empty", "rate_limit: {burst: 3}\n"))
    text = "\n".join(validate_files([file], {}))
    assert "mappings[0].rate_limit: unknown key 'records_per_sec' (did you mean " \
           "'records_per_second'?)" in text
    assert "mappings[0].rate_limit.invocations_per_second: must be 0.001–100000" in text
    assert "mappings[0].rate_limit.burst: must be 1–1000000, got 0" in text
    assert "mappings[0].circuit_breaker.failure_threshold" in text
    assert "mappings[0].circuit_breaker.probe_interval_seconds" in text
    assert "mappings[1].rate_limit: set records_per_second, invocations_per_second or " \
           "both" in text


def test_a_group_takes_the_limits_one_mapping_states(tmp_path: Path) -> None:
    file = write(tmp_path,
                 mapping("a", "rate_limit: {invocations_per_second: 20}\n"
                              "rate_limit_group: billing\n"),
                 mapping("b", "rate_limit_group: billing\n"))
    a, b = load_config([file], {}).mappings
    assert a.rate_limit == b.rate_limit == RateLimit(invocations_per_second=20)


def test_a_group_with_conflicting_or_missing_limits_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path,
                 mapping("a", "rate_limit: {invocations_per_second: 20}\n"
                              "rate_limit_group: billing\n"),
                 mapping("b", "rate_limit: {invocations_per_second: 30}\n"
                              "rate_limit_group: billing\n"),
                 mapping("c", "rate_limit_group: nobody\n"))
    problems = validate_files([file], {})
    assert any("mapping 'b': rate_limit differs from the one mapping 'a' gives "
               "rate_limit_group 'billing'" in p and "invocations_per_second=30" in p
               for p in problems), problems
    assert any("mapping 'c': rate_limit_group 'nobody' has no rate_limit" in p
               for p in problems), problems
