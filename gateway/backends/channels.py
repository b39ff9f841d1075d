"""gRPC channels to backends, with a short reconnect backoff.

grpcio's default backoff after a lost connection grows to 120 s: a backend that restarted in 15 s
would still be refused by the channel ("UNAVAILABLE") for minutes. Here it is capped at 1 s, so a
restarted server is seen again within a second of coming back (the circuit breaker bounds how often
a dead one is tried)."""

from __future__ import annotations

import grpc

__all__ = ["RECONNECT_OPTIONS", "insecure_channel"]

RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def insecure_channel(target: str, *options: tuple[str, int]) -> grpc.Channel:
    return grpc.insecure_channel(target, options=[*RECONNECT_OPTIONS, *options])
