"""The optional Argo Rollouts variant (CRD kinds kubernetes-validate has no schema for): its structure."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics
from tests.k8s.conftest import Rendered

UNIT = "overlays/rollouts"


def exported_sample_names() -> set[str]:
    metrics = Metrics()
    metrics.request("predict", "mnist", "tfserving-rest", "1", 200, 0.01, 0.005)
    metrics.attempt("mnist", "tfserving-rest", "1", 0.005, 200)
    metrics.shadow("mnist", "tfserving-rest", "torchserve-rest", "ok", 0.005, agreed=1, total=1)
    families = text_string_to_metric_families(metrics.render().decode())
    return {sample.name for family in families for sample in family.samples}


def test_rollout_borrows_the_gateway_deployment(rendered: dict[str, Rendered]) -> None:
    unit = rendered[UNIT]
    rollout = unit.find("Rollout", "gateway")
    reference = rollout["spec"]["workloadRef"]
    deployment = unit.find(reference["kind"], reference["name"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert rollout["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in rollout["spec"], "the HPA owns the count"
    assert unit.find("HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"]["kind"] == "Rollout"


def test_canary_steps_are_gated_by_analysis(rendered: dict[str, Rendered]) -> None:
    unit = rendered[UNIT]
    canary = unit.find("Rollout", "gateway")["spec"]["strategy"]["canary"]
    assert canary["maxUnavailable"] == 0
    steps = canary["steps"]
    assert [step["setWeight"] for step in steps if "setWeight" in step] == [10, 50]
    for index, step in enumerate(steps):
        if "setWeight" in step:
            assert "pause" in steps[index + 1] and "analysis" in steps[index + 2], f"step {index}"
    templates = {doc["metadata"]["name"] for doc in unit.of_kind("AnalysisTemplate")}
    for step in steps:
        for template in step.get("analysis", {}).get("templates", []):
            assert template["templateName"] in templates


def test_analysis_queries_use_the_gateways_metrics(rendered: dict[str, Rendered]) -> None:
    exported = exported_sample_names()
    for template in rendered[UNIT].of_kind("AnalysisTemplate"):
        declared = {arg["name"] for arg in template["spec"]["args"]}
        for metric in template["spec"]["metrics"]:
            query = metric["provider"]["prometheus"]["query"]
            used = set(re.findall(r"\b(gateway_[a-z_]+)\{", query))
            assert used and used <= exported, f"{metric['name']}: {sorted(used - exported)} not exported"
            assert set(re.findall(r"\{\{args\.([a-z-]+)\}\}", query)) <= declared
