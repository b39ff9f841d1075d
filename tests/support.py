"""Helpers shared by test folders: the exporters CLI, server settings on free ports, and fake HTTP
servers on loopback (stdlib, for the tests that say they use one)."""

from __future__ import annotations

import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TypeVar

from serving.ports import free_port
from serving.settings import ENV_PREFIX, PORT_FIELDS, ServingSettings, settings_from_env

QUICK_TRAINING = ["--epochs", "1", "--train-limit", "5000"]
Server = TypeVar("Server", bound=socketserver.BaseServer)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m exporters ...`` in a fresh interpreter, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "exporters", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def serving_settings(store_root: Path, run_dir: Path, **overrides: object) -> ServingSettings:
    """Settings with every port free right now, so tests never collide with a user's servers."""
    ports = {name: free_port() for name in PORT_FIELDS}
    return settings_from_env(environ={}, store_root=store_root, run_dir=run_dir, **ports, **overrides)


def serving_environment(settings: ServingSettings) -> dict[str, str]:
    """The same settings as ``SERVING_*`` variables, for the ``python -m serving`` CLI."""
    names = (*PORT_FIELDS, "store_root", "run_dir")
    return {ENV_PREFIX + name.upper(): str(getattr(settings, name)) for name in names}


@contextmanager
def served_in_thread(server: Server) -> Iterator[Server]:
    """``server`` answering from a daemon thread while the block runs; stopped and closed after it,
    even when the test fails."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def answer_json(handler: BaseHTTPRequestHandler, body: bytes, status: int = 200) -> None:
    """A fake server's keep-alive JSON answer (the handler's ``protocol_version`` decides keep-alive)."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
