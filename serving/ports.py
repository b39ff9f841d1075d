"""Check that the ports a server needs are free before starting it, for a clear error."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from serving.errors import ServingError


class PortInUse(ServingError):
    """A port a server needs is taken (usually by an earlier run that was not stopped)."""


def ensure_free(host: str, ports: Iterable[tuple[str, int]]) -> None:
    busy = []
    for purpose, port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(f"{purpose} {host}:{port}")
    if busy:
        raise PortInUse(
            "ports already in use: "
            + ", ".join(busy)
            + " — stop the other server (`python -m serving down`) "
            "or choose other ports (SERVING_* settings / flags)"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral port that was free a moment ago (tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
