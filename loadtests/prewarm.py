"""Warm every server before the plan starts, the same way for each (docs/benchmarking.md, step 5).

TorchServe's Java frontend keeps getting faster for thousands of requests (JIT compilation): measured
here at one connection, p50 about 9 ms for its first requests, 3 ms after 3,000, under 2 ms after
6,000, and its throughput rose for two minutes in one run. A fixed count leaves it cold, so each server
is sent real requests on each of its protocols from a few threads (plain ``http.client`` and grpcio)
until its throughput has *settled*: Triton's perf_analyzer rule, the last three one-second windows
within 10% of their mean, and no longer climbing (their mean at most 5% above the three before), after
at least ``--prewarm-requests``; ``--prewarm-seconds`` bounds it.
TF Serving gets exactly the same treatment. How long each took, and whether it settled, is reported.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from loadtests.backends import BACKEND_NAMES, spec
from loadtests.grpc_wire import codec_for
from loadtests.payloads import Payloads
from model_store import MODEL_NAME
from serving.endpoints import REST_PATHS, Endpoints

__all__ = ["Warmed", "prewarm"]

Call = Callable[[int], None]


def _rest(
    url: str, path: str, bodies: list[bytes], headers: dict[str, str] | list[dict[str, str]]
) -> Callable[[], Call]:
    """``headers``: one set, or several taken in turn (the gateway routed to each backend)."""
    turns = headers if isinstance(headers, list) else [headers]

    def connect() -> Call:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)

        def call(i: int) -> None:
            connection.request("POST", path, body=bodies[i % len(bodies)], headers=turns[i % len(turns)])
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


WINDOW_S = 1.0
STABLE_WINDOWS = 3
TOLERANCE = 0.10


@dataclass(frozen=True)
class Warmed:
    requests: int
    seconds: float
    settled: bool
    """The last windows' throughputs agreed (False: the time bound or a failing server stopped it)."""
    last_rps: float
    counted: bool = False
    """Warmed for a number of requests, not until settled (``settled``: all of them were sent)."""

    def describe(self) -> str:
        done = f"{self.requests:,} requests in {self.seconds:.0f} s"
        if self.counted:
            return f"{done} (a fixed count{'' if self.settled else ', NOT reached: time bound'})"
        how = "settled" if self.settled else "NOT settled (time bound)"
        return f"{done}, {how} at {self.last_rps:,.0f} req/s"


def settled(window_counts: list[int], windows: int = STABLE_WINDOWS, tolerance: float = TOLERANCE) -> bool:
    """The last ``windows`` counts each within ``tolerance`` of their mean, and no longer climbing: their
    mean at most ``tolerance / 2`` above the ``windows`` before (a JIT still compiling climbs slowly
    enough to pass the first test alone)."""
    if len(window_counts) < 2 * windows:
        return False
    last, before = window_counts[-windows:], window_counts[-2 * windows : -windows]
    mean = sum(last) / windows
    steady = mean > 0 and all(abs(count - mean) <= tolerance * mean for count in last)
    return steady and mean <= (1 + tolerance / 2) * (sum(before) / windows)


def _hammer(
    connect: Callable[[], Call],
    seconds: float,
    threads: int,
    requests: int = 0,
    window_s: float = WINDOW_S,
    until_settled: bool = True,
) -> Warmed:
    """Send from ``threads`` connections until the throughput settled after at least ``requests`` (or,
    with ``until_settled`` False, until ``requests`` were sent), for ``seconds`` at most."""
    counts = [0] * threads
    done = threading.Event()
    began = time.monotonic()

    def loop(slot: int) -> None:
        call = connect()
        i = slot
        while not done.is_set():
            try:
                call(i)
            except (OSError, grpc.RpcError, http.client.HTTPException):
                return  # a server that fails here is reported by the run itself
            i += threads
            counts[slot] += 1

    workers = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(threads)]
    for worker in workers:
        worker.start()
    windows: list[int] = []
    seen = 0
    stable = False
    while time.monotonic() - began < seconds and any(w.is_alive() for w in workers):
        time.sleep(min(window_s, max(0.0, seconds - (time.monotonic() - began))))
        total = sum(counts)
        windows.append(total - seen)
        seen = total
        stable = settled(windows) if until_settled else total >= requests
        if stable and total >= requests:
            break
    done.set()
    for worker in workers:
        worker.join(15)
    elapsed = time.monotonic() - began
    last_rps = (windows[-1] / window_s) if windows else 0.0
    return Warmed(sum(counts), elapsed, stable, last_rps, counted=not until_settled)


GATEWAY = "gateway"
"""The name of the gateway's warm-up in ``prewarm``'s answer."""
GATEWAY_REQUESTS = 100
"""Requests through the gateway per backend (it compiles nothing: its connection pools and code paths
are warm after a hundred; its throughput, bound by three servers in turn, did not settle in 15 s)."""


def prewarm(
    servers: list[str],
    endpoints: Endpoints,
    payloads: Payloads,
    torchserve_headers: dict[str, str],
    seconds: float,
    threads: int = 4,
    requests: int = 0,
    gateway_backends: tuple[str, ...] = (),
) -> dict[str, Warmed]:
    """Each server and protocol (``servers``: names such as ``torchserve-grpc``) warmed in turn until
    its throughput settled after at least ``requests``, or for ``seconds`` at most; then the gateway's
    REST API routed to each of ``gateway_backends`` in turn, request by request, ``GATEWAY_REQUESTS``
    times each (its connection pools and its workers' code paths; the servers behind it are warm)."""
    warmed = {
        name: _hammer(_job(name, endpoints, payloads, torchserve_headers), seconds, threads, requests)
        for name in servers
    }
    if gateway_backends:
        bodies = [d.body_for("tfserving") for d in payloads.digits]
        headers = [{"Content-Type": "application/json", "X-Gateway-Backend": b} for b in gateway_backends]
        path = REST_PATHS["tfserving"].format(model=MODEL_NAME)
        job = _rest(endpoints.gateway_url, path, bodies, headers)
        count = GATEWAY_REQUESTS * len(gateway_backends)
        warmed[GATEWAY] = _hammer(job, seconds, threads, count, until_settled=False)
    return warmed


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
    bodies = [d.body_for(entry.api) for d in payloads.digits]
    return _rest(address, REST_PATHS[entry.api].format(model=MODEL_NAME), bodies, headers)
