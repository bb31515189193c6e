"""The Grafana dashboard against real data: a real Prometheus (Debian package) scrapes a
running `esm run` whose mapping filters, fails, retries, bisects and dead-letters records,
and every query of every panel in deploy/grafana/esm-dashboard.json must return data.

Fails (never skips) when Prometheus cannot be installed or started.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.e2e_support import (
    REPO_ROOT,
    DaemonProcess,
    daemon_env,
    python_target,
    wait_until,
    write_config,
)
from tests.servers.prometheus_server import PrometheusServer

pytestmark = pytest.mark.integration

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "esm-dashboard.json"
# What Grafana substitutes at query time: all mappings, a rate window covering many scrapes.
VARIABLES = {"$mapping": ".*", "${mapping}": ".*", "$__rate_interval": "1m"}


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            out.append((f"{panel['title']} / {target['legendFormat']}", expr))
    return out


def mapping(tmp_path: Path) -> dict[str, object]:
    records = []
    for n in range(400):
        kind = "ping" if n % 5 == 0 else "order"
        body = {"id": f"r{n}", "seq": n, "kind": kind}
        if n % 97 == 1:
            body["poison"] = True
        records.append(json.dumps(body))
    return {
        "name": "dash-orders",
        "source": {"type": "memory", "lanes": 4, "records": records},
        "filter_criteria": {"filters": [{"pattern": '{"body": {"kind": ["order"]}}'}]},
        "batch_size": 10,
        "function_response_types": ["ReportBatchItemFailures"],
        "bisect_batch_on_function_error": True,
        "maximum_retry_attempts": 1,
        "retry_backoff": {"initial_seconds": 0.05, "maximum_seconds": 0.1},
        "lane_lag_metrics": True,
        "rate_limit": {"invocations_per_second": 200},
        "circuit_breaker": {"failure_threshold": 50},
        "target": python_target(),
        "destination_config": {"on_failure": {"type": "file",
                                              "path": str(tmp_path / "dead.jsonl")}},
    }


@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> Iterator[PrometheusServer]:
    tmp_path = tmp_path_factory.mktemp("dashboard")
    config = write_config(tmp_path, [mapping(tmp_path)])
    env = daemon_env(tmp_path / "journal.jsonl", sleep_seconds="0.03", fail_per_mille="150",
                     fail_below_delivery="2")
    with DaemonProcess(config, env, tmp_path / "esm.log") as daemon:
        daemon.wait_ready()
        prometheus = PrometheusServer([f"127.0.0.1:{daemon.port}"])
        prometheus.start()
        try:
            wait_until(lambda: _has_value(prometheus, "esm_on_failure_destination_delivered"
                                          "_events_total > 0"), 90,
                       lambda: f"no dead letters scraped yet\n{daemon.log_tail()}")
            wait_until(lambda: _has_value(prometheus, "count_over_time("
                                          "esm_invoked_events_total[1m]) >= 5"), 60,
                       lambda: "fewer than 5 scrapes of the daemon")
            yield prometheus
        finally:
            prometheus.stop()


def _has_value(prometheus: PrometheusServer, expr: str) -> bool:
    return bool(prometheus.query(expr))


def test_dashboard_has_the_panels_the_issue_asks_for():
    titles = " ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for word in ("throughput", "filtered out vs invoked", "errors", "retries", "bisections",
                 "dead letters", "lag", "iterator age", "latency percentiles", "batch size",
                 "largest lane", "oldest record age", "circuit breaker", "rate limit"):
        assert word in titles, f"no panel about {word}"


def test_the_autoscaling_and_protection_metrics_have_panels():
    exprs = " ".join(expr for _, expr in panel_queries())
    for metric in ("esm_sum_offset_lag", "esm_max_offset_lag", "esm_lane_offset_lag",
                   "esm_oldest_record_age_seconds", "esm_circuit_open",
                   "esm_rate_limit_wait_seconds_total"):
        assert metric in exprs, f"no panel shows {metric}"


@pytest.mark.parametrize("title, expr", panel_queries(), ids=[t for t, _ in panel_queries()])
def test_every_panel_query_returns_data_from_a_real_prometheus(scraped, title, expr):
    result = scraped.query(expr)
    assert result, f"panel {title!r}: no data for {expr}"
    assert any(series["metric"].get("mapping") == "dash-orders" for series in result), result


def keda_queries() -> list[tuple[str, str]]:
    """The examples' KEDA queries, pointed at this test's mapping."""
    out = []
    for path in sorted((REPO_ROOT / "deploy" / "kubernetes" / "examples").glob("keda-*.yaml")):
        for trigger in yaml.safe_load(path.read_text())["spec"]["triggers"]:
            query = re.sub(r'mapping="[^"]*"', 'mapping="dash-orders"',
                           trigger["metadata"]["query"])
            out.append((f"{path.name} / {query}", query))
    return out


@pytest.mark.parametrize("name, query", keda_queries(), ids=[n for n, _ in keda_queries()])
def test_keda_example_queries_return_a_number_from_a_real_prometheus(scraped, name, query):
    # KEDA's Prometheus scaler needs a single number back: one series, one value
    result = scraped.query(query)
    assert len(result) == 1, f"{name}: {result}"
    assert float(result[0]["value"][1]) >= 0
