"""deploy/kubernetes: the kustomize base validated against the Kubernetes OpenAPI schemas
(kubernetes-validate, bundled schemas, no cluster), CRD examples checked by shape, and the
operational rules: probes, grace period above the drain budget, mappings config valid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import generate_latest

from esm.config.loading import load_config
from esm.ops.metrics import Metrics
from tests.integration.e2e_support import REPO_ROOT

BASE = REPO_ROOT / "deploy" / "kubernetes" / "base"
EXAMPLES = REPO_ROOT / "deploy" / "kubernetes" / "examples"
K8S_VERSION = "1.29"
CRD_KINDS = {"ServiceMonitor", "ScaledObject"}


def base_resources() -> list[dict[str, Any]]:
    """What `kubectl apply -k` would send, minus the labels kustomize adds."""
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((BASE / name).read_text()):
            doc["metadata"].setdefault("namespace", kustomization["namespace"])
            docs.append(doc)
    return docs


def by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in base_resources() if d["kind"] == kind]
    return doc


def test_kustomization_lists_every_manifest_in_the_base():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


@pytest.mark.parametrize("doc", [d for d in base_resources() if d["kind"] not in CRD_KINDS],
                         ids=lambda d: d["kind"])
def test_builtin_resources_validate_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_rejects_a_misspelt_field():
    # The check above is only worth something if it can fail: a typo must be caught.
    deployment = by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_base_has_the_resources_the_issue_asks_for():
    kinds = {d["kind"] for d in base_resources()}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget",
            "ServiceMonitor"} <= kinds


def test_probes_use_healthz_and_readyz_on_the_served_port():
    container = by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    config = yaml.safe_load(by_kind("ConfigMap")["data"]["esm.yaml"])
    port = int(config["server"]["listen"].rpartition(":")[2])
    assert container["ports"][0]["containerPort"] == port


def test_grace_period_is_above_the_drain_budget(tmp_path):
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    config = load_mapping_config(tmp_path)
    # shutdown() waits the budget plus 5 s for connectors to close
    assert pod["terminationGracePeriodSeconds"] > config.shutdown_timeout_seconds + 5


def load_mapping_config(tmp_path: Path):
    path = tmp_path / "esm.yaml"
    path.write_text(by_kind("ConfigMap")["data"]["esm.yaml"])
    return load_config([str(path)], {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
                                     "ESM_AUTH_TOKEN": "t0ken-for-test"})


def test_configmap_mappings_are_a_valid_esm_config_with_a_token_from_the_secret(tmp_path):
    config = load_mapping_config(tmp_path)
    assert config.server.listen.startswith("0.0.0.0:") and config.server.auth_token
    env = {e["name"]: e for e in
           by_kind("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in env["ESM_AUTH_TOKEN"]["valueFrom"]


def test_pod_runs_as_non_root_with_a_read_only_root_filesystem():
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] and not container["allowPrivilegeEscalation"]


def test_selectors_match_the_pod_labels():
    labels = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind, selector in (("Service", by_kind("Service")["spec"]["selector"]),
                           ("PodDisruptionBudget",
                            by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]),
                           ("ServiceMonitor",
                            by_kind("ServiceMonitor")["spec"]["selector"]["matchLabels"])):
        assert selector.items() <= labels.items(), kind


def test_servicemonitor_scrapes_the_metrics_port_of_the_service():
    endpoint = by_kind("ServiceMonitor")["spec"]["endpoints"][0]
    service_ports = {p["name"] for p in by_kind("Service")["spec"]["ports"]}
    assert endpoint["port"] in service_ports and endpoint["path"] == "/metrics"
    assert by_kind("ServiceMonitor")["apiVersion"] == "monitoring.coreos.com/v1"


def scaled_objects() -> dict[str, dict[str, Any]]:
    return {path.name: yaml.safe_load(path.read_text())
            for path in sorted(EXAMPLES.glob("keda-*.yaml"))}


def exported_metric_names() -> set[str]:
    """Every metric family esm registers (counters with their `_total` sample name)."""
    text = generate_latest(Metrics().registry).decode()
    names = set()
    for kind_line in re.findall(r"^# TYPE (esm_\w+) (\w+)", text, re.M):
        name, kind = kind_line
        names.add(f"{name}_total" if kind == "counter" else name)
    return names


def test_keda_examples_cover_kafka_shards_and_queues():
    assert {"keda-scaledobject.yaml", "keda-shards-scaledobject.yaml",
            "keda-queue-scaledobject.yaml"} <= set(scaled_objects())


@pytest.mark.parametrize("name", sorted(scaled_objects()))
def test_keda_examples_scale_the_deployment_on_esm_metrics(name):
    scaled = scaled_objects()[name]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1" and scaled["kind"] == "ScaledObject"
    assert scaled["spec"]["scaleTargetRef"]["name"] == by_kind("Deployment")["metadata"]["name"]
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    exported = exported_metric_names()
    for trigger in spec["triggers"]:
        assert trigger["type"] == "prometheus"
        assert trigger.get("metricType", "AverageValue") in ("AverageValue", "Value")
        used = set(re.findall(r"\besm_\w+", trigger["metadata"]["query"]))
        assert used and used <= exported, used - exported
        assert float(trigger["metadata"]["threshold"]) > 0


def test_keda_examples_use_the_autoscaling_metrics_and_aggregate_them_right():
    queries = {name: [t["metadata"]["query"] for t in s["spec"]["triggers"]]
               for name, s in scaled_objects().items()}
    kafka = " ".join(queries["keda-scaledobject.yaml"])
    assert "sum(esm_sum_offset_lag" in kafka and "max(esm_max_offset_lag" in kafka
    # Queue lag is queue-wide on every replica: summing would count it once per replica
    queue = " ".join(queries["keda-queue-scaledobject.yaml"])
    assert "max(esm_oldest_record_age_seconds" in queue and "sum(" not in queue
    assert "esm_oldest_record_age_seconds" in " ".join(queries["keda-shards-scaledobject.yaml"])


def test_the_max_replicas_rule_is_written_down_per_source():
    text = (EXAMPLES / "README.md").read_text()
    for source, rule in (("`kafka`", "≤ partitions"), ("`kinesis`", "≤ open shards"),
                         ("`dynamodb_streams`", "≤ open shards"),
                         ("`sqs`", "what the target takes"),
                         ("`redis_streams`", "what the target takes")):
        line = next(line for line in text.splitlines() if source in line and "|" in line)
        assert rule in line, (source, line)
    for name, scaled in scaled_objects().items():
        comment = (EXAMPLES / name).read_text()
        assert "Max replicas:" in comment and "maxReplicaCount" in comment, name
        assert scaled["spec"]["maxReplicaCount"] >= 1


# ---- examples/lambda-sidecar.yaml: the function's own image beside esm ------------------

SIDECAR = EXAMPLES / "lambda-sidecar.yaml"


def sidecar(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(SIDECAR.read_text()) if d["kind"] == kind]
    return doc


def sidecar_containers() -> dict[str, dict[str, Any]]:
    pod = sidecar("Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


@pytest.mark.parametrize("doc", list(yaml.safe_load_all(SIDECAR.read_text())),
                         ids=lambda d: d["kind"])
def test_lambda_sidecar_example_validates_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def load_sidecar_config(tmp_path: Path):
    path = tmp_path / "esm.yaml"
    path.write_text(sidecar("ConfigMap")["data"]["esm.yaml"])
    return load_config([str(path)], {
        "ORDERS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
        "AWS_REGION": "eu-west-1"})


def test_lambda_sidecar_targets_the_function_containers_emulator_one_call_at_a_time(tmp_path):
    # The esm config is valid, and its lambda target is the function container's port on
    # the pod's loopback, capped at the emulator's one invocation at a time.
    (mapping,) = load_sidecar_config(tmp_path).mappings
    target = mapping.target.settings
    function = sidecar_containers()["function"]
    port = function["ports"][0]["containerPort"]
    assert target.endpoint_url == f"http://127.0.0.1:{port}"
    assert target.max_concurrent_invocations == 1
    assert target.function_error_detection == "auto"
    env = {e["name"]: e.get("value") for e in function["env"]}
    assert target.timeout_seconds == float(env["AWS_LAMBDA_FUNCTION_TIMEOUT"])
    assert mapping.source.settings.visibility_timeout_seconds >= target.timeout_seconds


def test_lambda_sidecar_function_outlives_esms_drain(tmp_path):
    # The function container's preStop wait covers esm's drain (budget + 5 s to close),
    # and the grace period covers both.
    config = load_sidecar_config(tmp_path)
    pod = sidecar("Deployment")["spec"]["template"]["spec"]
    wait = int(sidecar_containers()["function"]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert wait > config.shutdown_timeout_seconds + 5
    assert pod["terminationGracePeriodSeconds"] > wait
    esm = sidecar_containers()["esm"]
    assert esm["volumeMounts"][0]["mountPath"] == esm["args"][1]
    assert pod["volumes"][0]["configMap"]["name"] == sidecar("ConfigMap")["metadata"]["name"]
