"""Gateway integration fixtures: real processes on free loopback ports, always stopped afterwards.

``exported_store`` and ``mnist`` come from ``tests/conftest.py`` (one short real export).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serving.ports import free_port as free_port  # the gateway tests import it from here

REPO = Path(__file__).resolve().parents[3]


def wait_until_ok(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout} s")


def stop(process: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM to the server (it stops its workers itself); past ``grace``, SIGKILL to its whole
    process group, so no worker outlives a server that had to be killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def start(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python <args>`` with ``env``; a gateway gets no gRPC ingress unless ``env`` names a port
    (the default port is a user's, and tests never share ports)."""
    with log.open("wb") as stream:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env={**os.environ, "GATEWAY_GRPC_BIND": "", **env},
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: see stop()
        )


@dataclass
class RunningGateway:
    base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


@contextmanager
def running_gateway(
    folder: Path, routing: str, env: Mapping[str, str] | None = None, ready_path: str = "/readyz"
) -> Iterator[RunningGateway]:
    """``python -m gateway`` (one worker) on a free port with ``routing`` as its routing file and
    ``env`` on top; waits until ``ready_path`` answers 200 and stops the server afterwards, even when
    the test fails."""
    routing_file = folder / "routing.yaml"
    routing_file.write_text(routing)
    port = free_port()
    settings = {
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_WORKERS": "1",
        "GATEWAY_ROUTING_FILE": str(routing_file),
        **(env or {}),
    }
    log = folder / "gateway.log"
    process = start(["-m", "gateway"], settings, log)
    gateway = RunningGateway(f"http://127.0.0.1:{port}", port, process, log)
    try:
        try:
            wait_until_ok(gateway.base + ready_path, 90, process)
            _wait_for_workers(log, int(settings["GATEWAY_WORKERS"]), 90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- gateway log ---\n{gateway.log_tail()}") from None
        yield gateway
    finally:
        stop(process)


def _wait_for_workers(log: Path, workers: int, timeout: float) -> None:
    """Until granian logs every worker started: one ready worker answers /readyz for all, and a worker
    still loading its models when the test ends makes the stop slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count("Started worker-") >= workers:
            return
        time.sleep(0.2)
    raise AssertionError(f"not all {workers} workers started within {timeout} s")


class FakeTorchServe(ThreadingHTTPServer):
    """Speaks TorchServe's inference REST API: /ping and /predictions/<m>; answers digit 7 after ``delay``."""

    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of new gateway connections (each worker thread
    # opens its own) then waits for a SYN retransmit, past the gateway's 1 s attempt timeout (a 504).
    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeTorchServeHandler)
        self.delay = 0.0
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeTorchServeHandler(BaseHTTPRequestHandler):
    server: FakeTorchServe

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"status": "Healthy"})

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:  # handler threads run at once
            self.server.requests += 1
        time.sleep(self.server.delay)
        count = len(payload["instances"])
        self._send(200, {"predictions": [[0.0] * 7 + [1.0, 0.0, 0.0]] * count, "digits": [7] * count})


@pytest.fixture
def fake_torchserve() -> Iterator[FakeTorchServe]:
    server = FakeTorchServe()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
