"""An independent load generator for one window: no Locust, no gevent.

One thread, one keep-alive ``http.client`` connection, the same request bytes and the same answer
checks as the Locust users, timed with ``perf_counter``. :mod:`loadtests.independent` runs it in every
round right after Locust's one-user window of the same target: if the two disagree by much, a harness
(not a server) is being measured. ``wrk`` cannot check each answer's digit, and is a Debian package a
machine may lack; ``make bench-gateway`` adds one ``wrk`` point where it is installed.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse
from dataclasses import dataclass

from loadtests.checks import check_gateway_headers, check_rest_prediction, check_status
from loadtests.payloads import Digit
from loadtests.stats import percentile

__all__ = ["CrossCheck", "run_crosscheck"]


@dataclass(frozen=True)
class CrossCheck:
    target: str
    tool: str
    seconds: float
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    rps: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def run_crosscheck(
    target: str,
    url: str,
    path: str,
    digits: tuple[Digit, ...],
    headers: dict[str, str],
    seconds: float,
    *,
    api: str = "tfserving",
    backend: str | None = None,
    warmup: int = 200,
) -> CrossCheck:
    """Send ``digits`` in turn to ``url + path`` for ``seconds`` (after ``warmup`` requests), in the
    body ``api`` takes (TF Serving and TorchServe: instances; ``v2``: a V2 tensor) and checking each
    answer as the Locust user does; ``backend``: the gateway's ``X-Gateway-Backend`` (in ``headers``)
    that must have answered."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    bodies = [(d.label, d.body_for(api)) for d in digits]
    all_headers = {"Content-Type": "application/json", **headers}
    durations: list[float] = []
    failures = 0
    try:
        for i in range(warmup):
            label, body = bodies[i % len(bodies)]
            connection.request("POST", path, body=body, headers=all_headers)
            connection.getresponse().read()
        began = time.perf_counter()
        i = 0
        while time.perf_counter() - began < seconds:
            label, body = bodies[i % len(bodies)]
            i += 1
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers=all_headers)
            answer = connection.getresponse()
            content = answer.read()
            elapsed = (time.perf_counter() - started) * 1000.0
            problem = check_status(answer.status, content) or check_rest_prediction(content, label, api)
            if backend and not problem:
                problem = check_gateway_headers(dict(answer.getheaders()), backend)
            if problem:
                failures += 1
            else:
                durations.append(elapsed)
        wall = time.perf_counter() - began
    finally:
        connection.close()
    return CrossCheck(
        target,
        "http.client, 1 keep-alive connection, 1 thread",
        wall,
        len(durations),
        failures,
        percentile(durations, 50),
        percentile(durations, 99),
        len(durations) / wall if wall > 0 else float("nan"),
    )
