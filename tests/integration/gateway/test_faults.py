"""The real gateway (``python -m gateway``) against hostile clients and a misbehaving backend.

The backend is ``tests.faults.FaultyTorchServe``: TorchServe's REST protocol, wrong on purpose
(traceback bodies, bodies that drip, huge or compressed bodies, resets). Each test is one row of
docs/reliability.md's table of hostile inputs.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import psutil
import pytest

from tests.faults import SECRET_LINE, FaultyTorchServe, running
from tests.integration.gateway.conftest import running_gateway

pytestmark = pytest.mark.integration
BODY = json.dumps({"instances": [[0.0] * 784]}).encode()
DEADLINE_S = 2.0
PREDICT = "/v1/models/mnist:predict"


@dataclass
class Gateway:
    base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    backend: FaultyTorchServe

    def rss_mib(self) -> float:
        """Resident memory of every process of the server (launcher and workers)."""
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def post(base: str, body: bytes = BODY, timeout: float = 10) -> tuple[int, Message, bytes, float]:
    """Status, headers (names match in any case: granian writes them in lower case), body, seconds."""
    request = urllib.request.Request(base + PREDICT, body, {"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read(), time.monotonic() - started


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, return everything the server answers until it closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may answer before the whole body is sent
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with running() as backend:
        env = {
            "GATEWAY_TORCHSERVE_REST_URL": backend.url,
            "GATEWAY_TORCHSERVE_KEY_FILE": str(tmp_path / "no-key-file.json"),
            "GATEWAY_DEADLINE_S": str(DEADLINE_S),
            "GATEWAY_ATTEMPT_TIMEOUT_S": str(DEADLINE_S),
            "GATEWAY_GRACEFUL_TIMEOUT_S": "10",
        }
        routing = "models: {mnist: {backends: {torchserve-rest: 1}, failover: false}}\n"
        with running_gateway(tmp_path, routing, env, ready_path="/livez") as served:
            yield Gateway(served.base, served.port, served.process, served.log, backend)


def test_a_backend_traceback_never_reaches_the_client(gateway: Gateway) -> None:
    gateway.backend.mode = "traceback"
    status, headers, body, _ = post(gateway.base)
    assert status == 502
    error = json.loads(body)["error"]
    assert error["code"] == "bad_backend_response" and error["request_id"] == headers["X-Request-ID"]
    assert "Traceback" not in body.decode() and SECRET_LINE.split("=")[1] not in body.decode()
    time.sleep(0.5)  # the log line is written by the worker
    assert error["request_id"] in gateway.log.read_text()  # what the backend said is logged instead


def test_deadline_bounds_a_body_that_drips(gateway: Gateway) -> None:
    """Once answered 200 after 11.2 s against a 3 s deadline: the timeout applied per read."""
    gateway.backend.mode = "drip"
    status, _, body, elapsed = post(gateway.base)
    assert status == 504, body
    assert elapsed < DEADLINE_S + 1.0


@pytest.mark.parametrize("mode", ["huge", "gzip_bomb"])
def test_oversized_backend_answers_are_refused_and_memory_stays_flat(gateway: Gateway, mode: str) -> None:
    assert post(gateway.base)[0] == 200  # warm: connections and buffers exist
    before = gateway.rss_mib()
    gateway.backend.mode = mode
    for _ in range(3):
        status, _, body, _ = post(gateway.base, timeout=30)
        assert status == 502, body
    growth = gateway.rss_mib() - before
    assert growth < 64, f"{mode}: the gateway grew by {growth:.0f} MiB"  # one 64 MB answer would show


def test_a_reset_is_answered_503(gateway: Gateway) -> None:
    gateway.backend.mode = "reset"
    status, _, body, _ = post(gateway.base)
    assert status == 503 and b"closed the connection" in body


def _chunked(document: bytes, padding: int) -> bytes:
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    chunks = [document, *([b" " * 65536] * (padding // 65536))]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def test_chunked_bodies_over_the_limit_are_413_not_truncated(gateway: Gateway) -> None:
    """A valid document followed by 20 MB of spaces was cut at 4 MiB, parsed and answered 200."""
    answer = raw(gateway.port, _chunked(BODY, 20 * 1024 * 1024))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer and b"x-request-id" in answer.lower()
    small = raw(gateway.port, _chunked(BODY, 65536))  # chunked and under the limit: served
    assert small.startswith(b"HTTP/1.1 200"), small[:300]


def test_slow_and_silent_clients_do_not_starve_normal_traffic(gateway: Gateway) -> None:
    """Once: 12 slow header senders left 7 of 13 normal requests answered; 50 slow bodies, none."""
    silent, slow_headers, slow_bodies = 300, 150, 150
    sockets: list[tuple[socket.socket, bytes]] = []
    stop_dripping = threading.Event()

    def drip() -> None:
        while not stop_dripping.wait(1.0):
            for sock, byte in sockets:
                with contextlib.suppress(OSError):
                    sock.send(byte)

    body_head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{"
    ).encode()
    dripper = threading.Thread(target=drip, daemon=True)
    try:
        for count, first, byte in (
            (silent, b"", b""),
            (slow_headers, b"POST /v1/models/mnist:predict HTTP/1.1\r\nX-Slow: ", b"a"),
            (slow_bodies, body_head, b" "),
        ):
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
                sock.sendall(first)
                sockets.append((sock, byte))
        dripper.start()
        time.sleep(1.5)  # every slow body is now waiting in the server
        answers = [post(gateway.base, timeout=5) for _ in range(20)]
        assert [a[0] for a in answers] == [200] * 20
        assert max(a[3] for a in answers) < 1.0
    finally:
        stop_dripping.set()
        for sock, _ in sockets:
            sock.close()


def test_sigterm_closes_keep_alive_connections_cleanly(gateway: Gateway) -> None:
    """Idle keep-alive connections once got a reset when the gateway stopped."""
    gateway.backend.mode, gateway.backend.hang_s = "hang", 1.0
    idle = []
    for _ in range(4):
        sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: g\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        idle.append(sock)
    busy = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    busy.sendall(
        f"POST {PREDICT} HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    time.sleep(0.3)  # the request is in flight at the backend
    gateway.process.send_signal(signal.SIGTERM)
    try:
        for sock in idle:
            assert sock.recv(4096) == b""  # FIN, not ConnectionResetError
        answer = b""
        while chunk := busy.recv(65536):
            answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 ") and b"connection: close" in head, answer[:300]
    finally:
        for sock in [*idle, busy]:
            sock.close()
    assert gateway.process.wait(20) == 0
