"""Settings from GATEWAY_* variables (through monkeypatch) and the routing file model."""

from __future__ import annotations

import os
import re
import threading
import time
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
    assert route.retry_budget.min_concurrent == 3


@pytest.mark.parametrize(
    ("budget", "says"),
    [
        ("{ratio: 0.2, min_retries: 3, window_s: 10}", "rename min_retries to min_concurrent"),
        ("{ratio: -1}", "ratio: expected a number >= 0"),
        ("{min_concurrent: 1.5}", "min_concurrent: expected an integer >= 0"),
        ("{ratio: 0.2, burst: 3}", "unknown key(s) ['burst']"),
        ("[1]", "retry_budget: expected a mapping"),
    ],
)
def test_bad_retry_budgets_say_what_to_change(tmp_path: Path, budget: str, says: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(f"models: {{mnist: {{backends: {{tfserving-rest: 1}}, retry_budget: {budget}}}}}")
    with pytest.raises(RoutingError, match=re.escape(says)):
        RoutingTable.load(path, KNOWN)


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


def _write(path: Path, text: str, mtime_ns: int) -> None:
    """Write ``text`` and pin the file's mtime: no test depends on the filesystem's timestamp tick."""
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_routing_source_reloads_on_change_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, "models: {mnist: {backends: {tfserving-rest: 1}}}", 1_000_000_000)
    now = [0.0]
    outcomes: list[str] = []
    source = RoutingSource(
        path, default_table([], {}), KNOWN, poll_s=1, clock=lambda: now[0], on_reload=outcomes.append
    )
    assert source.current().models["mnist"].backends == {"tfserving-rest": 1}
    _write(path, "models: {mnist: {backends: {torchserve-rest: 1}}}", 2_000_000_000)
    assert source.current().models["mnist"].backends == {"tfserving-rest": 1}  # not yet polled
    now[0] = 5.0
    assert source.current().models["mnist"].backends == {"torchserve-rest": 1}
    _write(path, "models: {mnist: {backends: {broken: 1}}}", 3_000_000_000)
    now[0] = 10.0
    assert source.current().models["mnist"].backends == {"torchserve-rest": 1}
    assert outcomes == ["ok", "error"]


def test_a_rewrite_within_one_timestamp_tick_is_seen(tmp_path: Path) -> None:
    """Same mtime, same size, other content: only the content tells the change."""
    path = tmp_path / "routing.yaml"
    tick = 1_700_000_000_000_000_000
    _write(path, "models: {mnist: {backends: {tfserving-rest: 1}}}", tick)
    now = [0.0]
    source = RoutingSource(path, default_table([], {}), KNOWN, poll_s=1, clock=lambda: now[0])
    _write(path, "models: {mnist: {backends: {tfserving-rest: 2}}}", tick)
    now[0] = 5.0
    assert source.current().models["mnist"].backends == {"tfserving-rest": 2}


def test_a_torn_in_place_write_is_not_kept_once_completed(tmp_path: Path) -> None:
    """An editor rewrites the file in place; a poll reads it half-written, and the half parses (a valid
    table with one model). The rest lands within the same timestamp tick: the next poll must see it."""
    path = tmp_path / "routing.yaml"
    tick = 1_700_000_000_000_000_000
    first = "models:\n  mnist: {backends: {tfserving-rest: 1}}\n"
    _write(path, first, tick)
    now = [0.0]
    outcomes: list[str] = []
    source = RoutingSource(
        path, default_table([], {}), KNOWN, poll_s=1, clock=lambda: now[0], on_reload=outcomes.append
    )
    whole = "models:\n  mnist: {backends: {torchserve-rest: 1}}\n  digits: {backends: {tfserving-rest: 1}}\n"
    torn = whole[: whole.index("  digits")]
    _write(path, torn, tick + 1)  # the poll catches the write half-way
    now[0] = 5.0
    assert set(source.current().models) == {"mnist"}  # the torn half is itself a valid table
    _write(path, whole, tick + 1)  # completed within the same tick
    now[0] = 10.0
    assert set(source.current().models) == {"mnist", "digits"}
    assert outcomes == ["ok", "ok"]
    now[0] = 15.0
    source.current()
    assert outcomes == ["ok", "ok"]  # nothing changed: no reload


def test_concurrent_readers_during_reloads_only_ever_see_whole_tables(tmp_path: Path) -> None:
    """Readers poll on every call while a writer rewrites the file, in place and by rename."""
    path = tmp_path / "routing.yaml"
    tables = [
        "models: {mnist: {backends: {tfserving-rest: 1}}}\n",
        "models: {mnist: {backends: {torchserve-rest: 1}}, digits: {backends: {tfserving-rest: 1}}}\n",
    ]
    path.write_text(tables[0])
    outcomes: list[str] = []
    source = RoutingSource(path, default_table([], {}), KNOWN, poll_s=0, on_reload=outcomes.append)
    allowed = [
        {"mnist": {"tfserving-rest": 1.0}},
        {"mnist": {"torchserve-rest": 1.0}, "digits": {"tfserving-rest": 1.0}},
    ]
    seen: list[dict[str, dict[str, float]]] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                table = source.current()
                seen.append({name: route.backends for name, route in table.models.items()})
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for i in range(200):
            text = tables[i % 2]
            if i % 4 < 2:  # in place: truncate, then write in two chunks (readers can see either half)
                with path.open("w") as stream:
                    stream.write(text[: len(text) // 2])
                    stream.flush()
                    stream.write(text[len(text) // 2 :])
            else:  # atomically, by rename
                staging = tmp_path / ".routing.yaml.part"
                staging.write_text(text)
                staging.replace(path)
        path.write_text(tables[1])
        deadline = time.monotonic() + 10
        while source.current().models.keys() != {"mnist", "digits"} and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        done.set()
        for reader in readers:
            reader.join(10)
    assert not failures, failures
    assert seen and all(table in allowed for table in seen)
    assert set(source.current().models) == {"mnist", "digits"}
    assert outcomes.count("ok") >= 2  # it did reload along the way (torn reads may add "error"s)
