"""The TF Serving stand-in's HTTP server takes bursts of new connections (no model, no requests)."""

from __future__ import annotations

import socket
from typing import cast

from serving.tfserving.rest import RestApi, make_http_server


def test_a_burst_of_new_connections_waits_in_the_listen_queue() -> None:
    """socketserver listens with a backlog of 5: past that, a new connection's SYN is dropped and the
    client retries a second later (the gateway's 1 s connect timeout then answered 504). Bound but not
    yet accepting, the server must still complete the handshake of 64 connections at once."""
    server = make_http_server("127.0.0.1", 0, cast(RestApi, None))  # no request is ever handled
    connections: list[socket.socket] = []
    try:
        port = server.server_address[1]
        for _ in range(64):
            connections.append(socket.create_connection(("127.0.0.1", port), timeout=2.0))
    finally:
        for connection in connections:
            connection.close()
        server.server_close()
    assert len(connections) == 64
