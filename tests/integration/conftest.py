"""Integration fixtures: real MNIST and one real (short) export, made once per test run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporters.mnist import MnistData, load_mnist
from model_store import MODEL_NAME, ModelStore
from serving.ports import free_port
from serving.process import stop_server
from serving.settings import ServingSettings, settings_from_env
from serving.torchserve import launcher as torchserve

QUICK_TRAINING = ["--epochs", "1", "--train-limit", "5000"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m exporters ...`` in a fresh interpreter, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "exporters", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def mnist() -> MnistData:
    return load_mnist()


@pytest.fixture(scope="session")
def exported_store(tmp_path_factory: pytest.TempPathFactory, mnist: MnistData) -> ModelStore:
    """A store holding version 1, trained for one short epoch and verified by the CLI."""
    root = tmp_path_factory.mktemp("store")
    result = run_cli("export", "--store", str(root), *QUICK_TRAINING)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return ModelStore(root, MODEL_NAME)


def serving_settings(store_root: Path, run_dir: Path, **overrides: object) -> ServingSettings:
    """Settings with every port free right now, so tests never collide with a user's servers."""
    ports = {
        name: free_port()
        for name in (
            "tf_grpc_port",
            "tf_rest_port",
            "ts_inference_port",
            "ts_management_port",
            "ts_metrics_port",
            "ts_grpc_inference_port",
            "ts_grpc_management_port",
        )
    }
    return settings_from_env(environ={}, store_root=store_root, run_dir=run_dir, **ports, **overrides)


@pytest.fixture(scope="session")
def torchserve_settings(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServingSettings]:
    """TorchServe (real, token auth on) serving version 1 of the session's exported store."""
    settings = serving_settings(exported_store.root, tmp_path_factory.mktemp("run"))
    try:
        torchserve.check_ports(settings)
        record = torchserve.start(settings)
        torchserve.wait_until_ready(settings, record, 120)
        yield settings
    finally:
        stop_server(settings.run_dir, torchserve.NAME)
