"""Our own rules over the rendered manifests: probes, limits, non-root, GPUs, ports, images, rollouts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.k8s.conftest import REPO, Doc, Rendered, container, containers, pod_specs

MANAGEMENT_PORTS = {
    8081: "TorchServe management",
    7071: "TorchServe gRPC management",
    8500: "TF Serving gRPC (carries ModelService.HandleReloadConfigRequest)",
}
GPU = "nvidia.com/gpu"
MODEL_SERVERS = {"tfserving": "tfserving", "torchserve": "torchserve"}
"""Deployment -> its serving container."""


def is_gpu(name: str) -> bool:
    return "gpu" in name


def each(rendered: dict[str, Rendered]) -> list[tuple[str, str, Doc, Doc]]:
    """(kustomization, workload, pod spec, container) for every container, init containers included."""
    return [
        (name, workload, spec, found)
        for name, unit in rendered.items()
        for workload, spec in pod_specs(unit)
        for found in containers(spec)
    ]


def test_every_container_has_probes(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        for workload, spec in pod_specs(unit):
            for found in containers(spec, init=False):  # init containers cannot have probes
                for probe in ("readinessProbe", "livenessProbe"):
                    assert probe in found, f"{name}: {workload}/{found['name']} has no {probe}"


def test_every_container_has_requests_and_limits(rendered: dict[str, Rendered]) -> None:
    for name, workload, _, found in each(rendered):
        resources = found.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert resource in resources.get(section, {}), (
                    f"{name}: {workload}/{found['name']} has no {resource} {section[:-1]}"
                )


def _effective(spec: Doc, found: Doc, key: str) -> Any:
    return found.get("securityContext", {}).get(key, spec.get("securityContext", {}).get(key))


def test_every_container_runs_non_root_and_confined(rendered: dict[str, Rendered]) -> None:
    for name, workload, spec, found in each(rendered):
        where = f"{name}: {workload}/{found['name']}"
        context = found.get("securityContext", {})
        assert _effective(spec, found, "runAsNonRoot") is True, f"{where}: runAsNonRoot"
        assert _effective(spec, found, "runAsUser") not in (None, 0), (
            f"{where}: runAsUser must be a non-zero uid"
        )
        assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities.drop ALL"
        assert context.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
        assert context.get("privileged") is not True, where
        seccomp = _effective(spec, found, "seccompProfile") or {}
        assert seccomp.get("type") == "RuntimeDefault", f"{where}: seccompProfile RuntimeDefault"


def test_namespace_enforces_restricted_pod_security(rendered: dict[str, Rendered]) -> None:
    checked = 0
    for name, unit in rendered.items():
        for namespace in unit.of_kind("Namespace"):
            labels = namespace["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted", name
            checked += 1
    assert checked >= 1, "no Namespace rendered: the check proves nothing"


def test_pods_get_no_api_token_or_service_links(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        for workload, spec in pod_specs(unit):
            assert spec.get("automountServiceAccountToken") is False, f"{name}: {workload} automounts a token"
            # Service links inject <SERVICE>_PORT=tcp://... variables; the gateway (GATEWAY_*) and
            # Locust (LOCUST_*) read variables with their Service's prefix as settings.
            assert spec.get("enableServiceLinks") is False, f"{name}: {workload} has service links"
            for found in containers(spec):
                mounts = {mount["mountPath"] for mount in found.get("volumeMounts", [])}
                if "/var/run/secrets/kubernetes.io/serviceaccount" in mounts:
                    assert (workload, found["name"]) == ("torchserve", "keypublisher"), (
                        f"{name}: only the key publisher talks to the Kubernetes API"
                    )


def test_gpus_only_as_limits_and_only_on_gpu_overlays(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        for workload, spec in pod_specs(unit):
            for found in containers(spec):
                resources = found.get("resources", {})
                assert GPU not in resources.get("requests", {}), f"{name}: {workload} requests GPUs"
                limit = resources.get("limits", {}).get(GPU)
                serving = MODEL_SERVERS.get(workload) == found["name"]
                if is_gpu(name) and serving:
                    assert int(limit) == 1, f"{name}: {workload} needs one GPU as a limit"
                    assert spec.get("nodeSelector") and spec.get("tolerations"), (
                        f"{name}: {workload} placement"
                    )
                else:
                    assert limit is None, f"{name}: {workload}/{found['name']} should not have a GPU"
                if is_gpu(name) and not serving and found.get("image", "").endswith("-gpu"):
                    # A GPU image without a GPU limit would see every GPU under the NVIDIA runtime.
                    env = {item["name"]: item.get("value") for item in found.get("env", [])}
                    assert env.get("NVIDIA_VISIBLE_DEVICES") == "void", f"{name}: {found['name']}"


def _target_port(unit: Rendered, service: Doc, port: Doc) -> int:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    selector = service["spec"]["selector"]
    for doc in unit.docs:
        template = doc.get("spec", {}).get("template", {})
        labels = template.get("metadata", {}).get("labels", {})
        if template and selector.items() <= labels.items():
            for found in containers(template["spec"], init=False):
                for declared in found.get("ports", []):
                    if declared.get("name") == target:
                        return int(declared["containerPort"])
    raise AssertionError(f"{unit.name}: Service {service['metadata']['name']} targets unknown port {target}")


def test_no_service_exposes_a_management_port(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        for service in unit.of_kind("Service"):
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP", (
                f"{name}: expose through an Ingress"
            )
            for port in service["spec"]["ports"]:
                for number in (port["port"], _target_port(unit, service, port)):
                    assert number not in MANAGEMENT_PORTS, (
                        f"{name}: Service {service['metadata']['name']} exposes {MANAGEMENT_PORTS[number]}"
                    )


def test_network_policies_admit_no_management_port(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        for policy in unit.of_kind("NetworkPolicy"):
            for rule in policy["spec"].get("ingress", []):
                ports = {port.get("port") for port in rule.get("ports", [])}
                assert rule.get("ports"), f"{name}: {policy['metadata']['name']} admits every port"
                assert not ports & MANAGEMENT_PORTS.keys(), f"{name}: {policy['metadata']['name']}"


def test_only_the_gateway_reaches_the_model_servers(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        policies = unit.of_kind("NetworkPolicy")
        if not any(workload in MODEL_SERVERS for workload, _ in pod_specs(unit)):
            continue
        assert any(
            policy["spec"]["podSelector"] == {}
            and "Ingress" in policy["spec"]["policyTypes"]
            and not policy["spec"].get("ingress")
            for policy in policies
        ), f"{name}: no default-deny ingress policy"
        for policy in policies:
            selected = policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
            if selected in MODEL_SERVERS:
                for rule in policy["spec"].get("ingress", []):
                    sources = rule.get("from", [])
                    assert sources, f"{name}: {policy['metadata']['name']} admits any source"
                    for source in sources:
                        assert source == {
                            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}
                        }


def test_model_servers_bind_management_to_loopback(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        if "torchserve" not in dict(pod_specs(unit)):
            continue
        for key, text in unit.configmap("torchserve-config")["data"].items():
            lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")
            assert lines["management_address"] == "http://127.0.0.1:8081", f"{name}: {key}"
            assert lines["grpc_management_address"] == "127.0.0.1", f"{name}: {key}"
            assert lines["disable_token_authorization"] == "false", f"{name}: {key}: token auth stays on"
        ports = {
            port["containerPort"] for port in container(unit, "torchserve", "torchserve").get("ports", [])
        }
        assert not ports & MANAGEMENT_PORTS.keys(), name


def _compose_images() -> set[str]:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return {service["image"] for service in compose["services"].values()}


def test_images_are_pinned_and_official_ones_match_compose(rendered: dict[str, Rendered]) -> None:
    official = _compose_images()
    for name, workload, _, found in each(rendered):
        image = found["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {workload}/{found['name']}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if repository.split("/")[-1] in ("serving", "torchserve"):
            assert image in official, f"{name}: {image} differs from docker-compose.yml's {sorted(official)}"
            assert image.endswith("-gpu") == is_gpu(name), f"{name}: {image}"


def test_rolling_updates_never_reduce_capacity(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        for deployment in unit.of_kind("Deployment"):
            strategy = deployment["spec"]["strategy"]
            assert strategy["type"] == "RollingUpdate", f"{name}: {deployment['metadata']['name']}"
            assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%"), deployment["metadata"]["name"]


def test_selectors_and_references_resolve(rendered: dict[str, Rendered]) -> None:
    builtin = {("ConfigMap", "kube-root-ca.crt")}  # created by Kubernetes in every namespace
    for name, unit in rendered.items():
        present = {(doc["kind"], doc["metadata"]["name"]) for doc in unit.docs} | builtin
        templates = [doc["spec"]["template"] for doc in unit.docs if "template" in doc.get("spec", {})]
        for doc in unit.of_kind("Deployment"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), doc["metadata"]["name"]
        for service in unit.of_kind("Service"):
            selector = service["spec"]["selector"].items()
            assert any(selector <= t["metadata"]["labels"].items() for t in templates), service["metadata"]
        for workload, spec in pod_specs(unit):
            assert ("ServiceAccount", spec["serviceAccountName"]) in present, f"{name}: {workload}"
            for volume in spec.get("volumes", []):
                sources = [volume, *volume.get("projected", {}).get("sources", [])]
                for source in sources:
                    if "configMap" in source:
                        assert ("ConfigMap", source["configMap"]["name"]) in present, f"{name}: {workload}"
                    if "secret" in source and not source["secret"].get("optional"):
                        assert ("Secret", source["secret"]["secretName"]) in present, f"{name}: {workload}"
            for found in containers(spec):
                for item in found.get("env", []):
                    ref = item.get("valueFrom", {}).get("secretKeyRef")
                    if ref and not ref.get("optional"):
                        assert ("Secret", ref["name"]) in present, f"{name}: {workload}"


def test_gateway_autoscales_and_keeps_a_quorum(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        if "gateway" not in dict(pod_specs(unit)):
            continue
        hpa = unit.find("HorizontalPodAutoscaler", "gateway")
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        workload = unit.find(target["kind"], target["name"])
        assert "replicas" not in workload["spec"], f"{name}: the HPA owns the gateway's replica count"
        assert hpa["spec"]["minReplicas"] >= 2, name
        if "workloadRef" in workload["spec"]:  # an Argo Rollout borrowing the Deployment's pod template
            reference = workload["spec"]["workloadRef"]
            workload = unit.find(reference["kind"], reference["name"])
        pdb = unit.find("PodDisruptionBudget", "gateway")
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("workload", ["gateway", "tfserving", "torchserve"])
def test_consistent_labels(rendered: dict[str, Rendered], workload: str) -> None:
    for name, unit in rendered.items():
        specs = dict(pod_specs(unit))
        if workload not in specs:
            continue
        for doc in unit.docs:
            labels = doc["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/part-of") == "mnist-serving", f"{name}: {doc['metadata']}"
        template = unit.find("Deployment", workload)["spec"]["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == workload
