"""One request's bookkeeping, the same for every transport (HTTP through Flask or the fast path, gRPC).

:func:`start_call` gives a request its id (the client's when it is a valid one), its deadline, its clock
and, with tracing on, its server span; :func:`finish_call` ends the span, counts the request in the
metrics and returns the answer's bookkeeping headers (id, backend, version, attempts, Server-Timing);
:func:`log_refusal` logs what a backend said about a refused request, with the request's id only.
Framework-free: HTTP renders the headers, gRPC leaves them out.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError
from gateway.router import Routed
from gateway.service import Gateway
from gateway.tracing import current_trace_id

__all__ = [
    "BACKEND_HEADER",
    "REQUEST_ID_HEADER",
    "VERSION_HEADER",
    "Call",
    "finish_call",
    "log_refusal",
    "new_request_id",
    "start_call",
    "valid_request_id",
]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
BACKEND_HEADER = "X-Gateway-Backend"
VERSION_HEADER = "X-Model-Version"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_NOT_COUNTED = {"metrics", "livez", "readyz", "server_live", "server_ready"}
"""Endpoints left out of the request metrics (scrapes and probes would drown the traffic)."""


@dataclass(slots=True)
class Call:
    """One request's bookkeeping: set up by :func:`start_call`, filled by the endpoint, read by
    :func:`finish_call`.

    Kept in one object so the hot path touches Flask's context-local proxies a handful of times
    per request instead of dozens (each access is a lookup through a context variable)."""

    gateway: Gateway
    started: float
    deadline: float
    request_id: str
    model: str = ""
    backend: str = ""
    version: str = ""
    backend_seconds: float = 0.0
    attempts: tuple[str, ...] = ()
    span: Any = None
    """The request's server span and its context token, when tracing is on."""
    span_token: Any = None
    headers: Any = None
    """The request's headers (HTTP) or metadata (gRPC), looked up in any case."""

    def routed(self, routed: Routed) -> None:
        self.backend = routed.backend
        self.version = routed.prediction.version or "default"
        self.backend_seconds = routed.prediction.backend_seconds
        self.attempts = routed.attempts


def valid_request_id(incoming: str) -> str:
    """The client's request id if it is one we pass on (length and characters checked), else ""."""
    return incoming if _REQUEST_ID.match(incoming) else ""


def new_request_id() -> str:
    """Not a secret, only unique: 128 random bits without a system call per request."""
    return f"{random.getrandbits(128):032x}"


def start_call(gateway: Gateway, headers: Any, span_name: str) -> Call:
    """A request's bookkeeping (id, deadline, clock; its server span when tracing is on). ``headers``
    looks names up in any case (Werkzeug's headers; the gRPC ingress's view of its metadata)."""
    call = Call(
        gateway,
        time.perf_counter(),
        time.monotonic() + gateway.settings.deadline_s,
        valid_request_id(headers.get(REQUEST_ID_HEADER, "")) or new_request_id(),
        headers=headers,
    )
    if gateway.tracing.enabled:
        call.span, call.span_token = gateway.tracing.start_request(span_name, headers)
    return call


def finish_call(call: Call, status: int, endpoint: str) -> list[tuple[str, str]]:
    """The answer's bookkeeping headers; ends the span and counts the request in the metrics."""
    total = time.perf_counter() - call.started
    backend_s = call.backend_seconds
    headers = [(REQUEST_ID_HEADER, call.request_id)]
    if call.backend:
        headers.append((BACKEND_HEADER, call.backend))
    if call.version:  # set only once a backend answered
        headers.append((VERSION_HEADER, call.version))
        headers.append(("X-Gateway-Attempts", ",".join(call.attempts)))
    timing = (
        f"gateway;dur={(total - backend_s) * 1000:.3f}, backend;dur={backend_s * 1000:.3f}, "
        f"total;dur={total * 1000:.3f}"
    )
    headers.append(("Server-Timing", timing))
    if call.span is not None:
        attributes = {"gateway.request_id": call.request_id, "gateway.model": call.model}
        attributes.update({"gateway.backend": call.backend, "gateway.version": call.version})
        call.gateway.tracing.end_request(call.span, call.span_token, status, attributes)
    if endpoint not in _NOT_COUNTED:
        call.gateway.metrics.request(
            endpoint, call.model, call.backend, call.version, status, total, backend_s
        )
    return headers


def log_refusal(error: GatewayError, call: Call | None) -> None:
    """What a backend said about a refused request goes to the log with the request and trace ids,
    never to the client; the backend that refused is the request's backend if none answered."""
    if call is not None and error.backend and not call.backend:
        call.backend = error.backend
    if error.detail:
        request_id = call.request_id if call is not None else ""
        trace_id = current_trace_id()
        traced = f" (trace {trace_id})" if trace_id else ""
        log.warning(
            "request %s%s: %s; the backend said: %r", request_id, traced, error.message, error.detail[:300]
        )
