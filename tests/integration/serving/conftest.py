"""Real model servers on free loopback ports, started once per test session and always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store import ModelStore
from serving.ports import free_port
from serving.process import stop_server
from serving.settings import ServingSettings, settings_from_env
from serving.torchserve import launcher as torchserve


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
