"""Null endpoints that answer at once, for calibrating the load generator (docs/benchmarking.md, step 3).

    python -m serving.nullserver --host 127.0.0.1 --rest-port 0 --grpc-port 0

REST: a minimal HTTP/1.1 keep-alive server on asyncio that reads each request (headers and
``Content-Length`` body) and sends a fixed, small JSON answer — far cheaper per request than any
model server, so the throughput Locust reaches against it is the generator's own ceiling.
gRPC: ``/serving.Null/Predict`` on grpcio, answering fixed bytes. The chosen ports are printed as
one JSON line on stdout (``{"rest_port": ..., "grpc_port": ...}``) once both listen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from concurrent import futures

__all__ = ["NULL_GRPC_ANSWER", "NULL_GRPC_METHOD", "NULL_REST_ANSWER", "main"]

NULL_REST_ANSWER = b'{"predictions":[[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]]}'
NULL_GRPC_METHOD = "/serving.Null/Predict"
NULL_GRPC_ANSWER = b"\n\x04null"
_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(NULL_REST_ANSWER)).encode()
    + b"\r\n\r\n"
)
_MAX_HEADER = 64 * 1024


class NullHttp(asyncio.Protocol):
    """Answers every complete request with the same 200 (pipelining and keep-alive included)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEADER and self._transport is not None:
                    self._transport.close()
                return
            length = content_length(bytes(self._buffer[:end]))
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            del self._buffer[:total]
            if self._transport is not None:
                self._transport.write(_HEAD + NULL_REST_ANSWER)


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return max(0, int(value.strip()))
            except ValueError:
                return 0
    return 0


def _grpc_server(host: str, port: int) -> tuple[object, int]:
    import grpc

    handler = grpc.method_handlers_generic_handler(
        NULL_GRPC_METHOD.split("/")[1],
        {"Predict": grpc.unary_unary_rpc_method_handler(lambda request, context: NULL_GRPC_ANSWER)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound


async def serve(host: str, rest_port: int, grpc_port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(NullHttp, host, rest_port, backlog=1024)
    grpc_server, bound_grpc = _grpc_server(host, grpc_port) if grpc_port >= 0 else (None, -1)
    rest = server.sockets[0].getsockname()[1]
    print(json.dumps({"rest_port": rest, "grpc_port": bound_grpc}), flush=True)
    async with server:
        await stop.wait()
    if grpc_server is not None:
        grpc_server.stop(0)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.nullserver", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default %(default)s)")
    parser.add_argument("--rest-port", type=int, default=0, help="REST port (0: any free port)")
    parser.add_argument("--grpc-port", type=int, default=0, help="gRPC port (0: any free port; -1: none)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.rest_port, args.grpc_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
