"""Check that the ports a server needs are free before starting it, for a clear error."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

from serving.errors import ServingError


class PortInUse(ServingError):
    """A port a server needs is taken (usually by an earlier run that was not stopped)."""


def ensure_free(host: str, ports: Iterable[tuple[str, int]]) -> None:
    busy = [f"{purpose} {host}:{port}" for purpose, port in ports if not _bindable(host, port, reuse=True)]
    if busy:
        raise PortInUse(
            "ports already in use: "
            + ", ".join(busy)
            + " — stop the other server (`python -m serving down`) "
            "or choose other ports (SERVING_* settings / flags)"
        )


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_CHOSEN = 10000
"""Ports below this are left to well-known services."""
_handed_out: set[int] = set()
_handed_lock = threading.Lock()


def ephemeral_range(path: Path = _EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux's default elsewhere)."""
    try:
        low, high = (int(value) for value in path.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a server a test or a benchmark starts next.

    Chosen below the kernel's ephemeral range when there is room: outgoing connections take their
    local ports from that range, so a port picked there (``bind(host, 0)``) could be taken by a
    connection opened before the server binds it (a test's gRPC server once failed to bind that way).
    Never the same port twice in one process, so several asked for at once are distinct."""
    low, _ = ephemeral_range()
    with _handed_lock:
        if low - _LOWEST_CHOSEN >= 1000:
            for _ in range(200):
                port = _LOWEST_CHOSEN + secrets.randbelow(low - _LOWEST_CHOSEN)
                if port not in _handed_out and _bindable(host, port):
                    _handed_out.add(port)
                    return port
        while True:  # no room below the range, or nothing free there: the kernel's choice
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
                port = int(probe.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def _bindable(host: str, port: int, reuse: bool = False) -> bool:
    """Can a listener bind ``port`` now? ``reuse``: as servers that set SO_REUSEADDR do (a port whose
    old connections are only in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if reuse:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
