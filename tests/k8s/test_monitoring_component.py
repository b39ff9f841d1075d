"""The ``monitoring`` kustomize component: its generated files are current, its PrometheusRule is
k8s/monitoring/rules.yml, its dashboard is the generator's, and its HPA and ServiceMonitor point at what
the gateway really exports and serves."""

from __future__ import annotations

import json
import re
from types import ModuleType

import pytest
import yaml

from gateway.metrics import Metrics
from tests.k8s.conftest import K8S, Rendered, load_script

OVERLAY = "overlays/monitoring"


@pytest.fixture(scope="module")
def monitoring() -> ModuleType:
    return load_script(K8S / "tools" / "monitoring.py")


def test_generated_files_are_current(monitoring: ModuleType) -> None:
    assert monitoring.main(["check"]) == 0, "run: python k8s/tools/monitoring.py render"


def test_prometheus_rule_is_the_rules_file(rendered: dict[str, Rendered]) -> None:
    rule = rendered[OVERLAY].find("PrometheusRule", "gateway")
    assert rule["metadata"]["namespace"] == "mnist-serving"
    assert rule["spec"] == yaml.safe_load((K8S / "monitoring" / "rules.yml").read_text())


def test_dashboard_configmap_is_the_generated_dashboard(
    rendered: dict[str, Rendered], monitoring: ModuleType
) -> None:
    configmap = rendered[OVERLAY].find("ConfigMap", "grafana-dashboard-gateway")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    document = json.loads(configmap["data"]["gateway-overview.json"])
    assert document == monitoring.dashboard()
    titles = [panel["title"] for panel in document["panels"]]
    assert len(set(titles)) == len(titles) == len(monitoring.PANELS)
    assert all(panel["targets"] for panel in document["panels"])
    ids = [panel["id"] for panel in document["panels"]]
    assert len(set(ids)) == len(ids)


def test_dashboard_reads_only_what_the_gateway_and_rules_export(monitoring: ModuleType) -> None:
    exported = {family.name for family in Metrics().registry.collect()}
    rules = yaml.safe_load((K8S / "monitoring" / "rules.yml").read_text())
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}
    for title, expr in monitoring.dashboard_queries(monitoring.dashboard()):
        metrics = set(re.findall(r"\b(?:gateway_|backend:|model:|version:)[A-Za-z0-9_:]+", expr))
        assert metrics, (title, expr)
        for name in metrics:
            base = name.removesuffix("_bucket").removesuffix("_total")
            assert name in recorded or base in exported, f"{title}: {name} is neither exported nor recorded"


def test_hpa_scales_on_in_flight_requests_beside_cpu(rendered: dict[str, Rendered]) -> None:
    hpa = rendered[OVERLAY].find("HorizontalPodAutoscaler", "gateway")
    kinds = {metric["type"]: metric for metric in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    assert kinds["Pods"]["pods"]["metric"]["name"] == Metrics().in_flight._name
    base = rendered["overlays/cpu"].find("HorizontalPodAutoscaler", "gateway")
    assert [metric["type"] for metric in base["spec"]["metrics"]] == ["Resource"]  # CPU alone without it


def test_service_monitor_scrapes_the_gateway_service(rendered: dict[str, Rendered]) -> None:
    unit = rendered[OVERLAY]
    monitor = unit.find("ServiceMonitor", "gateway")
    service = unit.find("Service", "gateway")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["http"]
    assert "http" in ports and monitor["spec"]["endpoints"][0]["path"] == "/metrics"
