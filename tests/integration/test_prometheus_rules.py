"""deploy/prometheus/alerts.yaml: valid for promtool, one promtool unit test per rule, and
only metrics esm really exports (Debian package `prometheus` provides promtool)."""

from __future__ import annotations

import re
import subprocess

import yaml
from prometheus_client import generate_latest

from esm.config.loading import load_config
from esm.runtime.daemon import Daemon
from tests.integration.e2e_support import REPO_ROOT
from tests.servers.prometheus_server import promtool

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load((RULES_DIR / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules():
    result = subprocess.run([promtool(), "check", "rules", "alerts.yaml"], cwd=RULES_DIR,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = subprocess.run([promtool(), "test", "rules", "alerts_test.yaml"], cwd=RULES_DIR,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_a_unit_test():
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yaml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case.get("exp_alerts")}
    assert {rule["alert"] for rule in rules()} <= tested


def test_the_issue_s_alerts_exist():
    names = {rule["alert"] for rule in rules()}
    assert {"EsmLagGrowing", "EsmDeadLetters", "EsmFailingInvocations", "EsmReaderRestarts",
            "EsmMappingNotReady"} <= names


def test_the_autoscaling_and_protection_metrics_have_alerts():
    exprs = {rule["alert"]: str(rule["expr"]) for rule in rules()}
    assert "esm_sum_offset_lag" in exprs["EsmLagGrowing"]
    assert "esm_oldest_record_age_seconds" in exprs["EsmOldestRecordWaiting"]
    assert "esm_circuit_open" in exprs["EsmCircuitOpen"]
    assert "esm_rate_limit_wait_seconds_total" in exprs["EsmRateLimitSaturated"]


def test_rules_use_only_metrics_esm_exports(tmp_path):
    # Given the metric names a running daemon exposes
    path = tmp_path / "esm.yaml"
    path.write_text('mappings: [{name: a, source: {type: memory}, target: {type: python, '
                    'handler: "esm.demo.handlers:handle"}}]\nserver: {enabled: false}\n')
    daemon = Daemon(load_config([str(path)], {}))
    daemon.start()
    try:
        exported = set(re.findall(r"^(esm_[a-z_]+)", generate_latest(daemon.registry).decode(),
                                  re.M))
    finally:
        daemon.shutdown()
    # Then every esm_ metric a rule uses is one of them
    used = {name for rule in rules() for name in re.findall(r"\besm_[a-z_]+", str(rule["expr"]))}
    assert used and used <= exported, used - exported
