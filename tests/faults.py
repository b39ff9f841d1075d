"""Fault-injecting backends for tests (fakes, by design): TorchServe's inference REST protocol
(``GET /ping``, ``POST /predictions/<model>[/<version>]``) answered correctly or wrongly on purpose.

``FaultyTorchServe.mode`` picks the behaviour of the next predictions:

- ``ok``: digit 7 for every instance, like our handler;
- ``traceback``: 500 with a Python traceback in the body (and a secret-looking line);
- ``drip``: a correct 200 whose body trickles out one byte every ``drip_interval_s``;
- ``huge``: a 200 whose body is ``huge_bytes`` of JSON whitespace (nothing compressed);
- ``gzip_bomb``: a 200 declared ``Content-Encoding: gzip`` whose 250 KB inflate to 256 MB;
- ``reset``: the connection is reset (RST) without an answer;
- ``hang``: no answer until ``hang_s`` has passed.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support import served_in_thread

__all__ = ["SECRET_LINE", "FaultyTorchServe", "running"]

SECRET_LINE = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MODES = ("ok", "traceback", "drip", "huge", "gzip_bomb", "reset", "hang")


@cache
def _gzip_bomb() -> bytes:
    return gzip.compress(b" " * (256 * 1024 * 1024), compresslevel=9)


class FaultyTorchServe(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's backlog of 5 drops bursts of new connections

    def __init__(self, mode: str = "ok") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._mode = "ok"
        self.mode = mode
        self.drip_interval_s = 0.8
        self.huge_bytes = 64 * 1024 * 1024
        self.hang_s = 30.0
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        if mode == "gzip_bomb":
            _gzip_bomb()  # made now (seconds of CPU), not while the gateway's deadline runs
        self._mode = mode

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FaultyTorchServe
    protocol_version = "HTTP/1.1"  # keep-alive, like TorchServe

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _head(self, status: int, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def do_GET(self) -> None:
        body = b'{"status": "Healthy"}'
        self._head(200, len(body))
        self.wfile.write(body)

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with self.server.lock:
            self.server.requests += 1
        count = len(payload["instances"])
        good = json.dumps({"predictions": [[0.0] * 7 + [1.0, 0.0, 0.0]] * count}).encode()
        mode = self.server.mode
        if mode == "ok":
            self._head(200, len(good))
            self.wfile.write(good)
        elif mode == "traceback":
            body = (
                "Traceback (most recent call last):\n"
                '  File "/home/model-server/handler.py", line 42, in handle\n'
                f"    {SECRET_LINE}\n"
                "RuntimeError: CUDA out of memory\n"
            ).encode()
            self.send_response(500)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif mode == "drip":
            self._head(200, len(good))
            for byte in good:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(self.server.drip_interval_s)
        elif mode == "huge":
            self._head(200, self.server.huge_bytes)
            chunk = b" " * 65536
            left = self.server.huge_bytes
            while left > 0:
                self.wfile.write(chunk[:left])
                left -= len(chunk)
        elif mode == "gzip_bomb":
            bomb = _gzip_bomb()
            self._head(200, len(bomb), {"Content-Encoding": "gzip"})
            self.wfile.write(bomb)
        elif mode == "reset":
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif mode == "hang":
            time.sleep(self.server.hang_s)
        else:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")


@contextmanager
def running(mode: str = "ok") -> Iterator[FaultyTorchServe]:
    """A faulty TorchServe on a free loopback port, shut down afterwards even if the test fails."""
    with served_in_thread(FaultyTorchServe(mode)) as server:
        yield server
