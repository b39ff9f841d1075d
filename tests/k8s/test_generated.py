"""The servers' configs and argv in k8s/ are what the project's own generators give, and the pieces agree.

TorchServe's config.properties: serving.torchserve.config.render. TF Serving's models.config, monitoring
config and argv: serving.tfserving.official. The gateway's environment: gateway.settings.Settings.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from gateway.routing import RoutingTable
from gateway.settings import Settings
from tests.k8s.conftest import K8S, Rendered, container, env_of, load_script, pod_specs


@pytest.fixture(scope="module")
def manifests() -> ModuleType:
    return load_script(K8S / "tools" / "manifests.py")


def _is_canary(name: str) -> bool:
    return "canary" in name


def _serving_units(rendered: dict[str, Rendered]) -> dict[str, Rendered]:
    return {name: unit for name, unit in rendered.items() if "tfserving" in dict(pod_specs(unit))}


def _versions(manifests: ModuleType, name: str) -> tuple[list[int], dict[str, int]]:
    release = manifests.read_release()
    if _is_canary(name):
        return [release.stable, release.canary], {"stable": release.stable, "canary": release.canary}
    return [release.stable], {"stable": release.stable}


def test_generated_files_are_current(manifests: ModuleType) -> None:
    stale = manifests.stale_files()
    assert not stale, f"run `python k8s/tools/manifests.py render`; stale: {stale}"


def test_configmaps_equal_the_generators_output(rendered: dict[str, Rendered], manifests: ModuleType) -> None:
    from serving.tfserving.official import model_config_text, monitoring_config_text

    release = manifests.read_release()
    policy = manifests.read_policy(manifests.BASE_ROUTING)
    for name, unit in _serving_units(rendered).items():
        versions, labels = _versions(manifests, name)
        tf = unit.configmap("tfserving-config")["data"]
        assert tf == {
            "models.config": model_config_text(manifests.tfserving_options(versions, labels)),
            "monitoring.config": monitoring_config_text(),
        }, name
        ts = unit.configmap("torchserve-config")["data"]
        assert ts == {
            "config.properties": manifests.torchserve_properties(versions, gpus=0),
            "config-gpu.properties": manifests.torchserve_properties(versions, gpus=1),
        }, name
        routing = unit.configmap("gateway-routing")["data"]["routing.yaml"]
        expected = manifests.canary_routing if _is_canary(name) else manifests.base_routing
        assert routing == expected(release, policy), name


def _cpu_limit(found: dict[str, Any]) -> int:
    return int(str(found["resources"]["limits"]["cpu"]))


def test_tfserving_args_come_from_official_command(
    rendered: dict[str, Rendered], manifests: ModuleType
) -> None:
    release = manifests.read_release()
    for name, unit in _serving_units(rendered).items():
        found = container(unit, "tfserving", "tfserving")
        assert found["command"] == [manifests.TF_BINARY]
        if "gpu" in name:
            expected = [*manifests.tfserving_args(release), "--per_process_gpu_memory_fraction=0.4"]
        else:
            # CPU: the thread budget is the container's CPU limit, for TF Serving and TorchServe alike.
            threads = _cpu_limit(found)
            expected = manifests.tfserving_args(release, threads)
            ts_env = env_of(container(unit, "torchserve", "torchserve"))
            assert ts_env["OMP_NUM_THREADS"] == ts_env["MKL_NUM_THREADS"] == str(threads), name
            assert _cpu_limit(container(unit, "torchserve", "torchserve")) == threads, name
        assert found["args"] == expected, name


def _mounts(found: dict[str, Any]) -> dict[str, str]:
    return {mount["name"]: mount["mountPath"] for mount in found.get("volumeMounts", [])}


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_servers_read_what_the_init_containers_copy(
    rendered: dict[str, Rendered], manifests: ModuleType
) -> None:
    artifacts = load_script(K8S / "tools" / "artifacts.py")
    for version in (1, 7):
        assert artifacts.mar_name("mnist", version) == manifests.mar_name(version)
    for name, unit in _serving_units(rendered).items():
        tf, tf_init = container(unit, "tfserving", "tfserving"), container(unit, "tfserving", "models")
        assert tf_init["command"] == ["cp", "-R", "/artifacts/tfserving/.", _mounts(tf_init)["models"] + "/"]
        assert _mounts(tf)["models"] == str(manifests.TF_MODELS_DIR)
        assert _mounts(tf)["config"] == str(manifests.TF_CONFIG_DIR)

        ts, ts_init = container(unit, "torchserve", "torchserve"), container(unit, "torchserve", "models")
        assert _mounts(ts)["models"] == _mounts(ts_init)["models"] == manifests.TS_MODEL_STORE
        assert ts_init["command"] == ["cp", "-R", "/artifacts/torchserve/.", manifests.TS_MODEL_STORE + "/"]
        config_file = _arg(ts["args"], "--ts-config")
        assert Path(config_file).parent.as_posix() == _mounts(ts)["config"] == manifests.TS_CONFIG_DIR
        expected_key = "config-gpu.properties" if "gpu" in name else "config.properties"
        assert Path(config_file).name == expected_key, name
        assert _arg(ts["args"], "--model-store") == manifests.TS_MODEL_STORE


def test_key_publisher_secret_and_gateway_agree(rendered: dict[str, Rendered], manifests: ModuleType) -> None:
    publisher_module = load_script(K8S / "base" / "torchserve" / "keypublisher.py")
    for name, unit in _serving_units(rendered).items():
        ts = container(unit, "torchserve", "torchserve")
        publisher = container(unit, "torchserve", "keypublisher")
        key_file = Path(_arg(publisher["command"], "--key-file"))
        assert (
            key_file.parent.as_posix()
            == ts["workingDir"]
            == _mounts(publisher)["work"]
            == _mounts(ts)["work"]
        )
        for probe in ("startupProbe", "readinessProbe"):
            assert _arg(ts[probe]["exec"]["command"], "--key-file") == str(key_file), f"{name}: {probe}"

        secret = _arg(publisher["command"], "--secret")
        unit.find("Secret", secret)
        assert "data" not in unit.find("Secret", secret), "apply must not overwrite what the publisher wrote"
        role = unit.find("Role", "torchserve-key-publisher")
        assert role["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": [secret],
                "verbs": ["get", "patch"],
            }
        ]
        binding = unit.find("RoleBinding", "torchserve-key-publisher")
        assert binding["subjects"][0]["name"] == dict(pod_specs(unit))["torchserve"]["serviceAccountName"]

        # Renewal happens before expiry: --renew-before is shorter than the keys' lifetime.
        properties = unit.configmap("torchserve-config")["data"]["config.properties"]
        lifetime_min = int(
            next(line for line in properties.splitlines() if "token_expiration_min=" in line)[21:]
        )
        assert 0 < float(_arg(publisher["command"], "--renew-before")) < lifetime_min * 60 / 2

        gateway = dict(pod_specs(unit))["gateway"]
        volume = next(v for v in gateway["volumes"] if v.get("secret", {}).get("secretName") == secret)
        mount = _mounts(container(unit, "gateway", "gateway"))[volume["name"]]
        env = env_of(container(unit, "gateway", "gateway"))
        assert env["GATEWAY_TORCHSERVE_KEY_FILE"] == f"{mount}/{publisher_module.SECRET_KEY}"
        assert env["GATEWAY_TORCHSERVE_MANAGEMENT_URL"] == "", "management is unreachable from the gateway"


def _gateway_settings(unit: Rendered) -> Settings:
    env = env_of(container(unit, "gateway", "gateway"))
    # Values from Secrets are the operator's; any string parses for those fields.
    plain = {key: value if isinstance(value, str) else "secret-value" for key, value in env.items()}
    return Settings.from_env(plain)  # unknown GATEWAY_* names or bad values raise SettingsError


def test_gateway_environment_parses_and_points_at_the_services(rendered: dict[str, Rendered]) -> None:
    for name, unit in _serving_units(rendered).items():
        settings = _gateway_settings(unit)
        services = {
            (doc["metadata"]["name"], port["port"])
            for doc in unit.of_kind("Service")
            for port in doc["spec"]["ports"]
        }
        for url in (settings.tfserving_rest_url, settings.torchserve_rest_url):
            host, port = url.removeprefix("http://").split(":")
            assert (host, int(port)) in services, f"{name}: {url} is no Service port"
        bind_port = int(settings.bind.rsplit(":", 1)[1])
        grpc_port = int(settings.grpc_bind.rsplit(":", 1)[1])
        assert settings.bind.startswith("0.0.0.0:") and settings.grpc_bind.startswith("0.0.0.0:"), name
        ports = [p["containerPort"] for p in container(unit, "gateway", "gateway")["ports"]]
        assert ports == [bind_port, grpc_port], name
        assert ("gateway", grpc_port) in services, f"{name}: the gRPC port is no Service port"


def test_gateway_routing_parses_and_needs_only_the_slim_image(
    rendered: dict[str, Rendered], manifests: ModuleType
) -> None:
    from gateway.registry import BACKEND_NAMES

    for name, unit in _serving_units(rendered).items():
        settings = _gateway_settings(unit)
        assert settings.routing_file is not None
        gateway = dict(pod_specs(unit))["gateway"]
        volume = next(
            v for v in gateway["volumes"] if v.get("configMap", {}).get("name") == "gateway-routing"
        )
        assert "subPath" not in str(container(unit, "gateway", "gateway")["volumeMounts"]), (
            "updates need no subPath"
        )
        mount = _mounts(container(unit, "gateway", "gateway"))[volume["name"]]
        assert settings.routing_file.parent.as_posix() == mount
        text = unit.configmap("gateway-routing")["data"][settings.routing_file.name]
        table = RoutingTable.parse(yaml.safe_load(text), name, BACKEND_NAMES)
        assert table.backend_names() <= manifests.SLIM_IMAGE_BACKENDS, name
        route = table.models["mnist"]
        release = manifests.read_release()
        assert route.versions.keys() == set(_versions(manifests, name)[0]), "versions are always pinned"
        if _is_canary(name):
            assert route.versions[release.canary] == release.canary_percent


@pytest.fixture
def scratch(manifests: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of k8s/ that manifests.py writes to instead of the real one."""
    import shutil

    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(manifests, "K8S_DIR", root)
    monkeypatch.setattr(manifests, "RELEASE_FILE", root / "models.env")
    monkeypatch.setattr(manifests, "BASE_ROUTING", root / "base" / "gateway" / "routing.yaml")
    monkeypatch.setattr(manifests, "IMAGES_FILE", root / "components" / "images" / "kustomization.yaml")
    return root


def _route(path: Path) -> dict[str, Any]:
    route: dict[str, Any] = yaml.safe_load(path.read_text())["models"]["mnist"]
    return route


def test_manifests_commands(manifests: ModuleType, scratch: Path) -> None:
    canary_routing = scratch / "components" / "canary" / "gateway" / "routing.yaml"
    base_routing = scratch / "base" / "gateway" / "routing.yaml"
    assert manifests.main(["models", "--stable", "4"]) == 0
    assert manifests.read_release() == manifests.Release(4, 5, 0)
    assert (
        "load_models=mnist.4.mar,mnist.5.mar"
        in (scratch / "components/canary/torchserve/config.properties").read_text()
    )

    assert manifests.main(["weight", "10"]) == 0
    assert _route(canary_routing)["versions"] == {4: 90, 5: 10}
    assert _route(base_routing)["versions"] == {4: 100}

    assert manifests.main(["backends", "tfserving-rest=100", "torchserve-rest=0"]) == 0
    for path in (base_routing, canary_routing):
        assert _route(path)["backends"] == {"tfserving-rest": 100, "torchserve-rest": 0}
        assert _route(path)["shadow"] == {"percent": 10}  # the rest of the policy is kept
    assert manifests.main(["check"]) == 0

    (scratch / "base" / "tfserving" / "models.config").write_text("edited by hand\n")
    assert manifests.main(["check"]) == 1

    manifests_tag_before = manifests.current_images()["mnist-gateway"]["newTag"]
    assert manifests.main(["images", "--registry", "r.example/team/", "--artifacts-tag", "v5"]) == 0
    images = manifests.current_images()
    assert images["mnist-model-artifacts"] == {
        "name": "mnist-model-artifacts",
        "newName": "r.example/team/mnist-model-artifacts",
        "newTag": "v5",
    }
    assert images["mnist-gateway"]["newName"] == "r.example/team/mnist-gateway"
    assert images["mnist-gateway"]["newTag"] == manifests_tag_before  # unchanged without --tag


def test_manifests_refuses_what_cannot_work(manifests: ModuleType, scratch: Path) -> None:
    with pytest.raises(SystemExit, match="CANARY_PERCENT"):
        manifests.main(["weight", "150"])
    with pytest.raises(SystemExit, match="STABLE < CANARY"):
        manifests.main(["models", "--stable", "3", "--canary", "2"])
    with pytest.raises(SystemExit, match="cannot run in the gateway image"):
        manifests.main(["backends", "embedded-pytorch=10"])
    with pytest.raises(SystemExit, match="unknown backend"):
        manifests.main(["backends", "no-such-backend=1"])
    assert manifests.main(["check"]) == 0  # nothing was written
