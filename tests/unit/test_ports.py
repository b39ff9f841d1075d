"""Ports for servers that tests and benchmarks start: free, distinct, and out of the way of the
local ports the kernel gives outgoing connections."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from serving import ports
from serving.ports import PortInUse, ensure_free, ephemeral_range, free_port


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, _ = ephemeral_range()
    chosen = [free_port() for _ in range(100)]
    assert len(set(chosen)) == len(chosen)
    assert all(10000 <= port < low for port in chosen)
    for port in chosen[:10]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        busy.listen()
        draws = iter([taken - ports._LOWEST_CHOSEN, 0, 1, 2])
        monkeypatch.setattr(ports.secrets, "randbelow", lambda _: next(draws))
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (taken + 1, taken + 2))
        assert free_port() != taken


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (10500, 60999))
    port = free_port()
    assert port not in range(10000, 10500)


def test_the_range_is_read_from_the_kernel_or_defaults(tmp_path: Path) -> None:
    written = tmp_path / "range"
    written.write_text("40000\t50000\n")
    assert ephemeral_range(written) == (40000, 50000)
    assert ephemeral_range(tmp_path / "absent") == (32768, 60999)
    written.write_text("not numbers\n")
    assert ephemeral_range(written) == (32768, 60999)


def test_a_taken_port_is_named_in_the_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"rest 127.0.0.1:{port}"):
            ensure_free("127.0.0.1", [("rest", port)])
