"""docker-compose.yml checked for structure (no Docker engine runs here), against the configs
``python -m serving compose-config`` writes. The store holds a placeholder archive, not a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from model_store import CONTRACT, ArtifactRecord, ModelStore, VersionRecord
from model_store.checksums import combined_sha256, sha256_file
from serving.compose import write_compose_configs
from serving.settings import REPO_ROOT, settings_from_env
from serving.tfserving import launcher as tfserving_launcher
from serving.torchserve.config import parse

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
MANAGEMENT_PORTS = {"8081", "7071"}


def _store_with_placeholder_archive(root: Path, versions: int = 1) -> ModelStore:
    store = ModelStore(root, "mnist")
    for _ in range(versions):
        with store.draft() as draft:
            (draft.path / "torchserve").mkdir()
            (draft.path / "torchserve" / "mnist.mar").write_bytes(b"placeholder archive")
            files = {"torchserve/mnist.mar": sha256_file(draft.path / "torchserve" / "mnist.mar")}
            artifact = ArtifactRecord(
                "pytorch", "torchserve_mar", "torchserve/mnist.mar", files, combined_sha256(files), 19
            )
            record = VersionRecord(
                "mnist", draft.version, "t", CONTRACT.to_dict(), {"torchserve_mar": artifact}
            )
            store.publish(draft, record)
    return store


@pytest.fixture(scope="module")
def compose_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compose")
    store = _store_with_placeholder_archive(root / "store")
    out = root / "run" / "compose"
    write_compose_configs(settings_from_env(environ={}, store_root=store.root), out)
    return root


def test_cpu_and_gpu_services_from_official_images_pinned_by_tag() -> None:
    assert set(SERVICES) == {"tfserving", "torchserve", "tfserving-gpu", "torchserve-gpu"}
    for name, service in SERVICES.items():
        image, _, tag = service["image"].partition(":")
        assert image in {"tensorflow/serving", "pytorch/torchserve"}, name
        assert tag and tag != "latest" and not tag.startswith("latest"), name
        assert ("gpu" in tag) == name.endswith("-gpu"), name
    assert "profiles" not in SERVICES["tfserving"] and "profiles" not in SERVICES["torchserve"]
    for name in ("tfserving-gpu", "torchserve-gpu"):
        assert SERVICES[name]["profiles"] == ["gpu"]
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert "--per_process_gpu_memory_fraction=0.4" in SERVICES["tfserving-gpu"]["command"]


def test_ports_are_loopback_only_and_management_is_never_published() -> None:
    for name, service in SERVICES.items():
        for mapping in service["ports"]:
            host_ip, _, container_port = mapping.split(":")
            assert host_ip == "127.0.0.1", (name, mapping)
            assert container_port not in MANAGEMENT_PORTS, (name, mapping)
    assert {p.split(":")[-1] for p in SERVICES["tfserving"]["ports"]} == {"8500", "8501"}
    assert {p.split(":")[-1] for p in SERVICES["torchserve"]["ports"]} == {"8080", "8082", "7070"}


def test_every_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check["interval"] and check["retries"] >= 3, name
    assert "AVAILABLE" in " ".join(SERVICES["tfserving"]["healthcheck"]["test"])
    assert "/ping" in " ".join(SERVICES["torchserve"]["healthcheck"]["test"])


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}


def test_mounted_files_are_the_ones_compose_config_writes(compose_dir: Path) -> None:
    tf_mounts = _mounts(SERVICES["tfserving"])
    assert tf_mounts["/models/mnist"] == "./model_store/artifacts/mnist"
    config_dir = compose_dir / tf_mounts["/config"]
    for flag in SERVICES["tfserving"]["command"]:
        match = re.match(r"--\w+_file=/config/(.+)", flag)
        if match:
            assert (config_dir / match.group(1)).is_file(), flag
    models = text_format.Parse(
        (config_dir / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    assert models.model_config_list.config[0].base_path == "/models/mnist"
    assert "enable: true" in (config_dir / "monitoring.config").read_text()  # syntax: test_tfserving_config

    for name in ("torchserve", "torchserve-gpu"):
        service = SERVICES[name]
        mounts = _mounts(service)
        command = service["command"]
        config_file = command[command.index("--ts-config") + 1]
        host_config = compose_dir / mounts["/home/model-server/config"] / Path(config_file).name
        config = parse(host_config.read_text())
        assert config["model_store"] == command[command.index("--model-store") + 1]
        assert config["management_address"] == "http://127.0.0.1:8081"
        assert config["disable_token_authorization"] == "false"
        assert config["number_of_gpu"] == ("1" if name.endswith("-gpu") else "0")
        store = compose_dir / mounts["/home/model-server/model-store"]
        assert sorted(p.name for p in store.iterdir()) == [config["load_models"]]
        assert service["working_dir"] in mounts  # the key file lands on a shared mount


def test_two_versions_get_stable_and_canary_labels_in_compose_and_the_launcher(tmp_path: Path) -> None:
    """With versions 1 and 2 served, TF Serving's config labels 1 stable and 2 canary (both producers)."""
    store = _store_with_placeholder_archive(tmp_path / "store", versions=2)
    settings = settings_from_env(environ={}, store_root=store.root, versions="all")
    files = write_compose_configs(settings, tmp_path / "compose")
    assert files.versions == [1, 2]
    models = text_format.Parse(
        (files.tfserving_dir / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    (config,) = models.model_config_list.config
    assert dict(config.version_labels) == {"stable": 1, "canary": 2}
    assert list(config.model_version_policy.specific.versions) == [1, 2]
    policy, labels, versions = tfserving_launcher._policy_and_labels(settings)
    assert labels == {"stable": 1, "canary": 2} and versions == [1, 2]
    assert policy.kind == "specific" and tuple(policy.versions) == (1, 2)
    latest = settings_from_env(environ={}, store_root=store.root, versions="latest")
    assert tfserving_launcher._policy_and_labels(latest)[1] == {"stable": 2}
