"""Warm every server before the plan starts, the same way for each (docs/benchmarking.md, step 5).

TorchServe's Java frontend keeps getting faster for thousands of requests (JIT compilation): measured
here at one connection, p50 about 9 ms for its first requests, 3 ms after 3,000, under 2 ms after
6,000. The per-target warm-up inside the plan is short in the demo, so before the plan each server
is sent real requests on each of its protocols for the same number of seconds from a few threads
(plain ``http.client`` and grpcio; nothing is measured). TF Serving gets exactly the same treatment.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable

import grpc

from loadtests.endpoints import Endpoints
from loadtests.grpc_wire import tfserving_codec, torchserve_codec, v2_codec
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


def _hammer(connect: Callable[[], Call], seconds: float, threads: int) -> int:
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def loop(slot: int) -> None:
        call = connect()
        i = slot
        while time.monotonic() < stop_at:
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
) -> dict[str, int]:
    """Requests sent per server and protocol (``servers``: names such as ``torchserve-grpc``)."""
    return {
        name: _hammer(_job(name, endpoints, payloads, torchserve_headers), seconds, threads)
        for name in servers
    }


def _job(
    name: str, endpoints: Endpoints, payloads: Payloads, ts_headers: dict[str, str]
) -> Callable[[], Call]:
    json_headers = {"Content-Type": "application/json"}
    bodies = [digit.rest_body() for digit in payloads.digits]
    if name == "tfserving-rest":
        return _rest(endpoints.tfserving_rest_url, f"/v1/models/{MODEL_NAME}:predict", bodies, json_headers)
    if name == "torchserve-rest":
        path = f"/predictions/{MODEL_NAME}"
        return _rest(endpoints.torchserve_url, path, bodies, {**json_headers, **ts_headers})
    if name == "tfserving-grpc":
        codec = tfserving_codec(MODEL_NAME)
        requests = [codec.request(d) for d in payloads.digits]
        return _grpc(endpoints.tfserving_grpc_target, codec.method, requests, [])
    if name == "torchserve-grpc":
        codec = torchserve_codec(MODEL_NAME)
        metadata = [("authorization", ts_headers["Authorization"])] if ts_headers else []
        requests = [codec.request(d) for d in payloads.digits]
        return _grpc(endpoints.torchserve_grpc_target, codec.method, requests, metadata)
    if name == "v2-rest":
        v2_bodies = [digit.v2_body() for digit in payloads.digits]
        return _rest(endpoints.triton_url, f"/v2/models/{MODEL_NAME}/infer", v2_bodies, json_headers)
    if name == "v2-grpc":
        codec = v2_codec(MODEL_NAME)
        requests = [codec.request(d) for d in payloads.digits]
        return _grpc(endpoints.triton_grpc_target, codec.method, requests, [])
    raise ValueError(f"no direct server behind {name!r}")
