"""Where one request's CPU goes inside the gateway, stage by stage (``make bench-gateway`` runs it).

The py-spy profile of the live worker tells which frames hold the GIL under load, from a few hundred
samples; this tells how many microseconds of CPU each stage of a request costs. In a process of its
own (``python -m gatewaybench.stages``, on the load generator's CPUs), the gateway's WSGI app,
built as a worker builds it (prometheus_client's multi-process values included), is called from one
thread with a TF Serving REST predict request against the live server, after a warm-up; a wrapper
around each stage adds up the CPU time the thread spends inside it (``time.thread_time_ns``). The
floor proxy (:mod:`gatewaybench.floorproxy`) is called the same way, taking turns with the gateway.

These add up to less than the bench's CPU per request: a live worker also runs granian's I/O thread
and its hand-off to the Python threads, and those threads compete for the GIL. Compare the shares,
and the gateway's total with the floor's. A wrapper costs about a microsecond, counted in the stage
around it. libcurl runs in the calling thread, so its CPU is in the backend-call stage.

Both are also called with an instant backend: the server's answer to the same body, fetched once, is
handed back in process instead of a call (no socket, no wait). That is each one's own work alone,
with warm caches; the gap to the totals above is the call itself and what waiting for a server that
runs on the same machine costs the code around it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from model_store import MODEL_NAME

__all__ = ["STAGES", "exclusive_stages", "main", "measure", "stage_lines"]

STAGES = (
    ("send", "the backend call (libcurl: send, wait, receive)"),
    ("adapter", "backend adapter: encode the images, read the answer"),
    ("routing", "routing: in-flight slot and gauge, version, circuit breaker, retry budget"),
    ("metrics", "metrics: the request's and the attempt's counters and histograms"),
    ("decode", "decoding and validating the JSON body"),
    ("rest", "the rest: WSGI, fast path, request id, encoding the answer, headers"),
)
"""(key, what it covers), in the order printed."""

_WRAPPED = ("total", "decode", "gateway", "backend", "send", "request_metrics", "attempt_metrics")


def exclusive_stages(spent: Mapping[str, float], requests: int) -> dict[str, float]:
    """Nested wrapper totals (ns) -> µs per request of each stage in :data:`STAGES`, which add up to
    the request's total: the backend call sits in the adapter, which sits in routing (with the
    attempt's metrics), which sits in the request with decoding and the request's metrics."""
    if requests <= 0:
        raise ValueError("no requests measured")
    per = {key: spent.get(key, 0.0) / requests / 1000.0 for key in _WRAPPED}
    return {
        "send": per["send"],
        "adapter": per["backend"] - per["send"],
        "routing": per["gateway"] - per["backend"] - per["attempt_metrics"],
        "metrics": per["request_metrics"] + per["attempt_metrics"],
        "decode": per["decode"],
        "rest": per["total"] - per["decode"] - per["gateway"] - per["request_metrics"],
    }


def stage_lines(result: Mapping[str, Any]) -> list[str]:
    """The breakdown as printed: µs and share of each stage, then the totals beside the floor's."""
    stages = result["stages_us"]
    total = result["gateway_us"]
    lines = [f"  {stages[key]:7.1f} µs {100.0 * stages[key] / total:4.0f}%  {what}" for key, what in STAGES]
    lines.append(
        f"  {total:7.1f} µs        the gateway's total; the floor proxy, called the same way: "
        f"{result['floor_us']:.1f} µs ({total / result['floor_us']:.1f}x)"
    )
    instant = result.get("instant_backend_us")
    if instant:  # reports written before it was measured have none
        gateway, floor = instant["gateway"], instant["floor"]
        lines.append(
            f"  {gateway:7.1f} µs        the gateway with an instant backend (the server's answer handed "
            f"back in process): its own work; the floor's: {floor:.1f} µs ({gateway / floor:.1f}x)"
        )
    return lines


def _request(body: bytes) -> Callable[[], dict[str, Any]]:
    """A predict request's environ as granian hands it to the app: the process's environment, copied
    once at start, merged with the request's own keys (copying ``os.environ`` itself per request would
    cost tens of microseconds that no server spends)."""
    base = dict(os.environ)
    scope = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": f"/v1/models/{MODEL_NAME}:predict",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_GATEWAY_BACKEND": "tfserving-rest",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    return lambda: base | scope | {"wsgi.input": io.BytesIO(body)}


def _call(app: Callable[..., Any], request: Callable[[], dict[str, Any]]) -> None:
    statuses: list[str] = []
    answer = app(request(), lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(answer)
    if not statuses or not statuses[0].startswith("200"):
        raise RuntimeError(f"the predict request was answered {statuses[:1]}, not 200")


@contextmanager
def _instrumented(spent: Counter[str]) -> Iterator[None]:
    """Wrap each stage's function so that the thread CPU spent inside it is added to ``spent``."""
    from gateway.backends.http import CurlTransport
    from gateway.backends.tfserving import TFServingRestBackend
    from gateway.metrics import Metrics
    from gateway.protocols import tfserving_rest
    from gateway.service import Gateway

    targets = (
        (tfserving_rest, "decode_v1", "decode"),
        (Gateway, "predict", "gateway"),
        (TFServingRestBackend, "predict", "backend"),
        (CurlTransport, "send", "send"),
        (Metrics, "request", "request_metrics"),
        (Metrics, "attempt", "attempt_metrics"),
    )
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    clock = time.thread_time_ns

    def timed(function: Callable[..., Any], key: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += clock() - started

        return wrapper

    try:
        for (owner, name, key), (_, _, original) in zip(targets, originals, strict=True):
            setattr(owner, name, timed(original, key))
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


@contextmanager
def _instant_backend(answer: bytes) -> Iterator[None]:
    """The gateway's REST backends answer every predict with ``answer`` at once, without a call; other
    requests (the version status it reads now and then) still go to the server."""
    from gateway.backends.http import CurlTransport, HttpRequest, HttpResponse

    send = CurlTransport.send

    def instant(transport: CurlTransport, request: HttpRequest) -> HttpResponse:
        if request.url.endswith(":predict"):
            return HttpResponse(200, answer)
        return send(transport, request)

    CurlTransport.send = instant  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        CurlTransport.send = send  # type: ignore[method-assign]


def _server_answer(url: str, body: bytes) -> bytes:
    """The server's answer to ``body``, which the instant backend hands back."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/v1/models/{MODEL_NAME}:predict", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # nosec B310  # main() allows http on loopback only
        answer: bytes = reply.read()
    return answer


def _gateway_app(url: str, work: Path) -> Callable[..., Any]:
    routing = work / "routing.json"
    routing.write_text(json.dumps({"models": {MODEL_NAME: {"backends": {"tfserving-rest": 1}}}}))
    os.environ.update(
        GATEWAY_TFSERVING_REST_URL=url,
        GATEWAY_ROUTING_FILE=str(routing),
        GATEWAY_GRPC_BIND="",
        GATEWAY_LOG_LEVEL="warning",
    )
    from gateway.wsgi import app_from_env

    app: Callable[..., Any] = app_from_env()
    return app


def measure(url: str, body: bytes, requests: int, rounds: int = 10, warm_up: int = 300) -> dict[str, Any]:
    """The gateway's stages and total, and the floor's total, in µs of thread CPU per request; and
    both totals again with an instant backend.

    The four take turns, ``requests / rounds`` requests at a time, so that the machine's drift over
    the run (large on a shared machine) falls on all alike. It sets this process's
    ``GATEWAY_*``, ``FLOOR_*`` and Prometheus variables: run it in a process of its own, as the
    command does."""
    with tempfile.TemporaryDirectory(prefix="gateway-stages-") as scratch:
        work = Path(scratch)
        metrics_dir = work / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # before prometheus_client loads
        gateway = _gateway_app(url, work)
        from prometheus_client import values

        if not values.ValueClass._multiprocess:  # a worker's metric values, not the cheaper in-memory ones
            raise RuntimeError("prometheus_client was loaded before PROMETHEUS_MULTIPROC_DIR was set")
        os.environ["FLOOR_BACKEND_URL"] = f"{url.rstrip('/')}/v1/models/{MODEL_NAME}:predict"
        from gatewaybench.floorproxy import create_app

        floor = create_app()
        request = _request(body)
        # The worker writes its queued metric updates from a thread of its own (gateway.metric_writer),
        # whose CPU a thread clock does not see: here they are written by this thread after each round,
        # into the metrics stage, and the writer's own thread never wakes.
        writer = gateway.app.extensions["gateway"].metrics.writer  # type: ignore[attr-defined]
        writer.interval_s = 3600.0
        answer = _server_answer(url, body)
        floor_instant = create_app(replay=answer)
        for _ in range(warm_up):
            _call(gateway, request)
            _call(floor, request)
            _call(floor_instant, request)
        spent: Counter[str] = Counter()
        per_round = max(requests // rounds, 1)
        for _ in range(rounds):
            with _instrumented(spent):  # the floor calls none of the wrapped functions
                spent["total"] += _thread_ns(gateway, request, per_round)
                written = _thread_ns_of(writer.flush)
                spent["total"] += written
                spent["request_metrics"] += written
            spent["floor"] += _thread_ns(floor, request, per_round)
            with _instant_backend(answer):
                spent["gateway_instant"] += _thread_ns(gateway, request, per_round)
                spent["gateway_instant"] += _thread_ns_of(writer.flush)
            spent["floor_instant"] += _thread_ns(floor_instant, request, per_round)
    measured = per_round * rounds
    return {
        "requests": measured,
        "gateway_us": spent["total"] / measured / 1000.0,
        "stages_us": exclusive_stages(spent, measured),
        "floor_us": spent["floor"] / measured / 1000.0,
        "instant_backend_us": {
            "gateway": spent["gateway_instant"] / measured / 1000.0,
            "floor": spent["floor_instant"] / measured / 1000.0,
        },
    }


def _thread_ns_of(work: Callable[[], object]) -> int:
    started = time.thread_time_ns()
    work()
    return time.thread_time_ns() - started


def _thread_ns(app: Callable[..., Any], request: Callable[[], dict[str, Any]], requests: int) -> int:
    def calls() -> None:
        for _ in range(requests):
            _call(app, request)

    return _thread_ns_of(calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gatewaybench.stages", description=__doc__)
    parser.add_argument("--url", required=True, help="TF Serving REST base URL (a server on loopback)")
    parser.add_argument("--body", type=Path, required=True, help="a V1 predict body (JSON file)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests (default 2000)")
    parser.add_argument("--warm-up", type=int, default=300, help="unmeasured requests first (default 300)")
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.scheme != "http":
        parser.error(f"--url must be an http:// URL, not {args.url[:80]!r}")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"--url must name a server on loopback (127.0.0.1), not {parts.hostname!r}")
    if args.requests < 1 or args.warm_up < 0:
        parser.error("--requests must be at least 1 and --warm-up at least 0")
    result = measure(args.url, args.body.read_bytes(), args.requests, warm_up=args.warm_up)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
