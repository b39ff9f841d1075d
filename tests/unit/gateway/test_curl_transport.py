"""The libcurl transport against a real HTTP server on loopback (started and stopped by each test).

One handle per thread keeps its options between calls and sets one again only when a request needs
another value; the answer cap is libcurl's own, enforced while the body arrives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from gateway.backends.http import CurlTransport, HttpRequest
from gateway.errors import BadBackendResponse

LIMIT = 4096


class _Server(BaseHTTPRequestHandler):
    """``/size/<n>`` answers n bytes with a declared length, ``/chunked/<n>`` without one (chunks),
    ``/close/<n>`` by closing the connection after them; any other path echoes what was asked."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _Server.seen.append((method, self.path, dict(self.headers.items()), body))
        kind, _, size = self.path.strip("/").partition("/")
        payload = b"x" * int(size) if size.isdigit() else f"{method} {self.path}".encode()
        self.send_response(200)
        if kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(payload), 1000):
                piece = payload[start : start + 1000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Server.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def transport() -> Iterator[CurlTransport]:
    sender = CurlTransport(max_response_bytes=LIMIT)
    try:
        yield sender
    finally:
        sender.close()


@pytest.mark.parametrize("kind", ["size", "chunked", "close"])
def test_an_answer_past_the_cap_is_refused_however_it_is_framed(
    base_url: str, transport: CurlTransport, kind: str
) -> None:
    with pytest.raises(BadBackendResponse, match=f"larger than {LIMIT} bytes"):
        transport.send(HttpRequest("GET", f"{base_url}/{kind}/{LIMIT + 1}", None, {}, 5.0))


@pytest.mark.parametrize("kind", ["size", "chunked", "close"])
def test_an_answer_at_the_cap_arrives_whole(base_url: str, transport: CurlTransport, kind: str) -> None:
    reply = transport.send(HttpRequest("GET", f"{base_url}/{kind}/{LIMIT}", None, {}, 5.0))
    assert (reply.status, reply.body) == (200, b"x" * LIMIT)


def test_a_refused_answer_leaves_nothing_behind_for_the_next_call(
    base_url: str, transport: CurlTransport
) -> None:
    with pytest.raises(BadBackendResponse):
        transport.send(HttpRequest("GET", f"{base_url}/chunked/{LIMIT * 2}", None, {}, 5.0))
    reply = transport.send(HttpRequest("GET", f"{base_url}/size/10", None, {}, 5.0))
    assert reply.body == b"x" * 10


def test_each_call_goes_where_and_how_it_asks_on_one_handle(base_url: str, transport: CurlTransport) -> None:
    """URL, method, body and headers kept from one call must never leak into the next one."""
    calls = [
        HttpRequest("POST", f"{base_url}/a", b'{"n": 1}', {"Content-Type": "application/json"}, 5.0),
        HttpRequest("POST", f"{base_url}/a", b'{"n": 2}', {"Content-Type": "application/json"}, 5.0),
        HttpRequest(
            "POST", f"{base_url}/b", b"raw", {"Content-Type": "text/plain", "Authorization": "k"}, 5.0
        ),
        HttpRequest("GET", f"{base_url}/b", None, {}, 5.0),
        HttpRequest("POST", f"{base_url}/a", b"", {"Authorization": "k2"}, 5.0),
    ]
    answers = [transport.send(call).body for call in calls]
    assert answers == [b"POST /a", b"POST /a", b"POST /b", b"GET /b", b"POST /a"]
    seen = [
        (method, path, body, headers.get("Content-Type"), headers.get("Authorization"))
        for method, path, headers, body in _Server.seen
    ]
    assert seen == [
        ("POST", "/a", b'{"n": 1}', "application/json", None),
        ("POST", "/a", b'{"n": 2}', "application/json", None),
        ("POST", "/b", b"raw", "text/plain", "k"),
        ("GET", "/b", b"", None, None),
        ("POST", "/a", b"", "application/x-www-form-urlencoded", "k2"),  # libcurl's own default
    ]
    assert all("Expect" not in headers for _, _, headers, _ in _Server.seen)


def test_threads_keep_handles_of_their_own(base_url: str, transport: CurlTransport) -> None:
    answers: dict[int, bytes] = {}

    def call(index: int) -> None:
        answers[index] = transport.send(HttpRequest("GET", f"{base_url}/t{index}", None, {}, 5.0)).body

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == {i: f"GET /t{i}".encode() for i in range(4)}
