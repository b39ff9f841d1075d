"""A FAKE HTTP server with a known capacity, for the capacity search's test (not a model server).

    python -m tests.integration.loadtests.fake_capacity_server --capacity 150

It answers the null endpoint's fixed JSON at once while its token bucket (refilled at ``--capacity``
per second, ``--burst`` deep) has a token, and ``--late-ms`` later when it has none: below the
capacity almost every answer is immediate, above it a growing share is late, so a p99 SLO shorter
than ``--late-ms`` is crossed just above the capacity. Prints ``{"port": N}`` once it listens on
127.0.0.1; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

from serving.nullserver import NULL_REST_ANSWER, content_length

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(NULL_REST_ANSWER), NULL_REST_ANSWER)


class Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def protocol(bucket: Bucket, late_s: float) -> type[asyncio.Protocol]:
    class Fake(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = bytearray()

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                total = end + 4 + content_length(bytes(self.buffer[:end]))
                if len(self.buffer) < total:
                    return
                del self.buffer[:total]
                if bucket.take():
                    self.transport.write(ANSWER)
                else:
                    asyncio.get_running_loop().call_later(late_s, self.transport.write, ANSWER)

    return Fake


async def serve(capacity: float, burst: float, late_ms: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol(Bucket(capacity, burst), late_ms / 1000.0), "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacity", type=float, required=True)
    parser.add_argument("--burst", type=float, default=30.0)
    parser.add_argument("--late-ms", type=float, default=100.0)
    args = parser.parse_args()
    asyncio.run(serve(args.capacity, args.burst, args.late_ms))


if __name__ == "__main__":
    main()
