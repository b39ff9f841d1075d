"""ServingSettings: defaults, SERVING_* variables, explicit overrides, absolute paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.settings import settings_from_env


def test_defaults_are_the_servers_conventional_ports_on_loopback() -> None:
    settings = settings_from_env(environ={})
    assert (settings.tf_grpc_port, settings.tf_rest_port) == (8500, 8501)
    assert (settings.ts_inference_port, settings.ts_management_port, settings.ts_metrics_port) == (
        8080,
        8081,
        8082,
    )
    assert (settings.ts_grpc_inference_port, settings.ts_grpc_management_port) == (7070, 7071)
    assert settings.host == "127.0.0.1" and settings.ts_token_auth is True


def test_environment_then_overrides() -> None:
    environ = {"SERVING_TS_BATCH_SIZE": "8", "SERVING_TS_TOKEN_AUTH": "off", "SERVING_VERSIONS": "all"}
    settings = settings_from_env(environ=environ, versions="1,2")
    assert settings.ts_batch_size == 8 and settings.ts_token_auth is False
    assert settings.versions == "1,2"  # an explicit flag beats the environment


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ValueError, match="SERVING_TS_WORKERS='many'"):
        settings_from_env(environ={"SERVING_TS_WORKERS": "many"})


def test_paths_are_absolute() -> None:
    """Servers run in their own working directories, so a relative --store must be resolved."""
    settings = settings_from_env(environ={}, store_root=Path("model_store/artifacts"), run_dir=Path("run"))
    assert settings.store_root == (Path.cwd() / "model_store/artifacts").resolve()
    assert settings.run_dir.is_absolute() and settings.model_base_path.is_absolute()
