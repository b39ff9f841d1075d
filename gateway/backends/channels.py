"""gRPC channels to backends, with a short reconnect backoff.

grpcio's default backoff after a lost connection grows to 120 s: a backend that restarted in 15 s
would still be refused by the channel ("UNAVAILABLE") for minutes. Here it is capped at 1 s, so a
restarted server is seen again within a second of coming back (the circuit breaker bounds how often
a dead one is tried). Every call carries the current span's ``traceparent`` as metadata (when a span
is current: :mod:`gateway.tracing`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from gateway.tracing import outgoing_headers, requested

__all__ = ["RECONNECT_OPTIONS", "insecure_channel"]

RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
"""Not ``grpc.min_reconnect_backoff_ms``: grpc-core also takes it as the *connect timeout* of each
attempt, and at 100 ms a busy server's first SETTINGS frame comes too late (UNAVAILABLE)."""


class _TraceContext(grpc.UnaryUnaryClientInterceptor):
    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        extra = outgoing_headers()
        if extra:
            details = details._replace(metadata=[*(details.metadata or ()), *extra.items()])
        return continuation(details, request)


def insecure_channel(target: str, *options: tuple[str, int]) -> grpc.Channel:
    channel = grpc.insecure_channel(target, options=[*RECONNECT_OPTIONS, *options])
    # The interceptor costs a few microseconds a call: only where traces are exported.
    return grpc.intercept_channel(channel, _TraceContext()) if requested() else channel
