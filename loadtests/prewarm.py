"""Warm every server before the plan starts, the same way for each (docs/benchmarking.md, step 5).

TorchServe's Java frontend keeps getting faster for thousands of requests (JIT compilation): measured
here at one connection, p50 about 9 ms for its first requests, 3 ms after 3,000, under 2 ms after
6,000. The per-target warm-up inside the plan is short in the demo, so before the plan each server
is sent real requests on each of its protocols from a few threads (plain ``http.client`` and grpcio;
nothing is measured): for the same number of seconds, or, where ``--prewarm-requests`` is set (the
demo: 2,000), until each has had that many, whichever comes first. TF Serving gets exactly the same
treatment.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable

import grpc

from gateway.registry import BACKEND_NAMES, spec
from loadtests.endpoints import REST_PATHS, Endpoints
from loadtests.grpc_wire import codec_for
from loadtests.payloads import Payloads
from model_store import MODEL_NAME

__all__ = ["prewarm"]

Call = Callable[[int], None]


def _rest(url: str, path: str, bodies: list[bytes], headers: dict[str, str]) -> Callable[[], Call]:
    def connect() -> Call:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)

        def call(i: int) -> None:
            connection.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
            connection.getresponse().read()

        return call

    return connect


def _grpc(
    target: str, method: str, requests: list[bytes], metadata: list[tuple[str, str]]
) -> Callable[[], Call]:
    def connect() -> Call:
        stub = grpc.insecure_channel(target).unary_unary(method, _registered_method=False)

        def call(i: int) -> None:
            stub(requests[i % len(requests)], timeout=10, metadata=metadata)

        return call

    return connect


def _hammer(connect: Callable[[], Call], seconds: float, threads: int, requests: int = 0) -> int:
    """Send from ``threads`` connections for ``seconds``, or until ``requests`` were sent (0: no count)."""
    counts = [0] * threads
    stop_at = time.monotonic() + seconds
    enough = requests if requests > 0 else float("inf")

    def loop(slot: int) -> None:
        call = connect()
        i = slot
        while time.monotonic() < stop_at and sum(counts) < enough:
            try:
                call(i)
            except (OSError, grpc.RpcError, http.client.HTTPException):
                return  # a server that fails here is reported by the run itself
            i += threads
            counts[slot] += 1

    workers = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 15)
    return sum(counts)


def prewarm(
    servers: list[str],
    endpoints: Endpoints,
    payloads: Payloads,
    torchserve_headers: dict[str, str],
    seconds: float,
    threads: int = 4,
    requests: int = 0,
) -> dict[str, int]:
    """Requests sent per server and protocol (``servers``: names such as ``torchserve-grpc``): each
    for ``seconds``, or until it has had ``requests`` when that comes first (0: by time only)."""
    return {
        name: _hammer(_job(name, endpoints, payloads, torchserve_headers), seconds, threads, requests)
        for name in servers
    }


def _job(
    name: str, endpoints: Endpoints, payloads: Payloads, ts_headers: dict[str, str]
) -> Callable[[], Call]:
    if name not in BACKEND_NAMES or not spec(name).direct:
        raise ValueError(f"no direct server behind {name!r}")
    entry = spec(name)
    address = getattr(endpoints, entry.endpoint)
    if entry.protocol == "grpc":
        codec = codec_for(entry.api, MODEL_NAME)
        bearer = ts_headers.get("Authorization") if entry.api == "torchserve" else None
        requests = [codec.request(d) for d in payloads.digits]
        return _grpc(address, codec.method, requests, [("authorization", bearer)] if bearer else [])
    headers = {"Content-Type": "application/json", **(ts_headers if entry.api == "torchserve" else {})}
    bodies = [d.v2_body() if entry.api == "v2" else d.rest_body() for d in payloads.digits]
    return _rest(address, REST_PATHS[entry.api].format(model=MODEL_NAME), bodies, headers)
