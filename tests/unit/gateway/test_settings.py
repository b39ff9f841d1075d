"""Settings from GATEWAY_* variables (through monkeypatch) and the routing file model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.routing import RoutingError, RoutingSource, RoutingTable, default_table
from gateway.settings import Settings, SettingsError

KNOWN = ["tfserving-rest", "torchserve-rest", "embedded-pytorch"]
EXAMPLE = Path(__file__).resolve().parents[3] / "gateway" / "routing.example.yaml"


def test_defaults_bind_loopback() -> None:
    settings = Settings.from_env({})
    assert settings.bind == "127.0.0.1:8000" and settings.api_keys == () and settings.routing_file is None


def test_env_vars_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BIND", "0.0.0.0:9000")
    monkeypatch.setenv("GATEWAY_WORKERS", "4")
    monkeypatch.setenv("GATEWAY_DEADLINE_S", "0.75")
    monkeypatch.setenv("GATEWAY_API_KEYS", "a, b,,c")
    monkeypatch.setenv("GATEWAY_WARMUP", "off")
    monkeypatch.setenv("GATEWAY_ROUTING_FILE", "/etc/routing.yaml")
    monkeypatch.setenv("GATEWAY_TORCHSERVE_KEY_FILE", "/run/ts/key_file.json")
    settings = Settings.from_env()
    assert (settings.bind, settings.workers, settings.deadline_s) == ("0.0.0.0:9000", 4, 0.75)
    assert settings.api_keys == ("a", "b", "c") and settings.warmup is False
    assert settings.routing_file == Path("/etc/routing.yaml")
    assert settings.torchserve_key_file == Path("/run/ts/key_file.json")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_WORKERS", "many"),
        ("GATEWAY_WARMUP", "maybe"),
        ("GATEWAY_NO_SUCH_THING", "1"),
        ("GATEWAY_WORKERS", "0"),
    ],
)
def test_bad_env_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        Settings.from_env()


def test_example_routing_file_is_valid() -> None:
    table = RoutingTable.load(EXAMPLE, KNOWN)
    route = table.models["mnist"]
    assert route.backends["tfserving-rest"] == 50 and route.shadow.percent == 10 and route.failover
    assert route.retry_budget.ratio == 0.2 and route.labels == {"stable": 1}


@pytest.mark.parametrize(
    "text",
    [
        "models: {}",
        "models: {mnist: {backends: {nowhere: 1}}}",
        "models: {mnist: {backends: {tfserving-rest: 0}}}",
        "models: {mnist: {backends: {tfserving-rest: -1}}}",
        "models: {mnist: {backends: {tfserving-rest: 1}, shadow: {percent: 150}}}",
        "models: {mnist: {backends: {tfserving-rest: 1}, versions: {one: 1}}}",
        "models: {mnist: {backends: {tfserving-rest: 1}, surprise: true}}",
        "models: [",
    ],
)
def test_bad_routing_files_are_rejected(tmp_path: Path, text: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(RoutingError):
        RoutingTable.load(path, KNOWN)


def test_routing_source_reloads_on_change_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("models: {mnist: {backends: {tfserving-rest: 1}}}")
    now = [0.0]
    outcomes: list[str] = []
    source = RoutingSource(
        path, default_table([], {}), KNOWN, poll_s=1, clock=lambda: now[0], on_reload=outcomes.append
    )
    assert source.current().models["mnist"].backends == {"tfserving-rest": 1}
    path.write_text("models: {mnist: {backends: {torchserve-rest: 1}}}")
    assert source.current().models["mnist"].backends == {"tfserving-rest": 1}  # not yet polled
    now[0] = 5.0
    assert source.current().models["mnist"].backends == {"torchserve-rest": 1}
    path.write_text("models: {mnist: {backends: {broken: 1}}}")
    now[0] = 10.0
    assert source.current().models["mnist"].backends == {"torchserve-rest": 1}
    assert outcomes == ["ok", "error"]
