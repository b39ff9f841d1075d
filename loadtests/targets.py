"""The measured targets: what each one calls, by which protocol, and which pairs are compared.

A *target* is one way of asking the model for a digit: a serving stack called directly (REST or gRPC),
the gateway routed to one backend (the client always speaks REST to the gateway), the gateway's
in-process (embedded) backends, and the null endpoints that calibrate the load generator itself.
Each target has exactly one Locust User class (``loadtests.users``), named here so that the runner,
the report and the locustfiles agree without importing Locust.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_TARGETS",
    "CALIBRATION",
    "GATEWAY_PAIRS",
    "HEADLINE_PAIRS",
    "TARGETS",
    "Target",
    "select_targets",
]


@dataclass(frozen=True)
class Target:
    name: str
    """Identifier used in plans, samples, results and ``--targets`` (e.g. ``gateway/torchserve-rest``)."""
    user_class: str
    """The Locust User class that drives it (``loadtests.users``)."""
    framework: str
    """``tensorflow``, ``pytorch`` or ``none`` (calibration)."""
    protocol: str
    """What the load generator speaks: ``rest`` or ``grpc``."""
    path: str
    """``direct`` (client -> server), ``gateway`` (client -> gateway -> server), ``embedded`` (in the
    gateway's process), ``calibration`` (null endpoints)."""
    backend: str | None = None
    """The gateway backend this target selects (``X-Gateway-Backend``), or the direct server it measures."""

    @property
    def via_gateway(self) -> bool:
        return self.path in ("gateway", "embedded")


TARGETS: tuple[Target, ...] = (
    Target("tfserving-rest", "TFServingRestUser", "tensorflow", "rest", "direct", "tfserving-rest"),
    Target("torchserve-rest", "TorchServeRestUser", "pytorch", "rest", "direct", "torchserve-rest"),
    Target(
        "gateway/torchserve-rest",
        "GatewayTorchServeRestUser",
        "pytorch",
        "rest",
        "gateway",
        "torchserve-rest",
    ),
    Target(
        "gateway/tfserving-rest",
        "GatewayTFServingRestUser",
        "tensorflow",
        "rest",
        "gateway",
        "tfserving-rest",
    ),
    Target("tfserving-grpc", "TFServingGrpcUser", "tensorflow", "grpc", "direct", "tfserving-grpc"),
    Target("torchserve-grpc", "TorchServeGrpcUser", "pytorch", "grpc", "direct", "torchserve-grpc"),
    Target(
        "gateway/torchserve-grpc",
        "GatewayTorchServeGrpcUser",
        "pytorch",
        "rest",
        "gateway",
        "torchserve-grpc",
    ),
    Target(
        "gateway/tfserving-grpc",
        "GatewayTFServingGrpcUser",
        "tensorflow",
        "rest",
        "gateway",
        "tfserving-grpc",
    ),
    Target("v2-rest", "TritonRestUser", "pytorch", "rest", "direct", "v2-rest"),
    Target("v2-grpc", "TritonGrpcUser", "pytorch", "grpc", "direct", "v2-grpc"),
    Target("gateway/v2-rest", "GatewayV2RestUser", "pytorch", "rest", "gateway", "v2-rest"),
    Target("gateway/v2-grpc", "GatewayV2GrpcUser", "pytorch", "rest", "gateway", "v2-grpc"),
    Target(
        "gateway/embedded-tensorflow",
        "GatewayEmbeddedTensorflowUser",
        "tensorflow",
        "rest",
        "embedded",
        "embedded-tensorflow",
    ),
    Target(
        "gateway/embedded-pytorch",
        "GatewayEmbeddedPytorchUser",
        "pytorch",
        "rest",
        "embedded",
        "embedded-pytorch",
    ),
)
"""The serving targets, in the order a repetition visits them (the next repetition reverses it).

The order keeps the pairs that are compared close in time (A B B' A': TF Serving direct, TorchServe
direct, TorchServe via the gateway, TF Serving via the gateway), so that slow drifts of a shared
machine's load bias a comparison less.
"""

CALIBRATION: tuple[Target, ...] = (
    Target("null-rest", "NullRestUser", "none", "rest", "calibration"),
    Target("null-grpc", "NullGrpcUser", "none", "grpc", "calibration"),
)
"""Null endpoints: the load generator's own ceiling per protocol (measured first, never compared)."""

ALL_TARGETS: tuple[Target, ...] = CALIBRATION + TARGETS
_BY_NAME = {target.name: target for target in ALL_TARGETS}

HEADLINE_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("REST, direct (headline)", "tfserving-rest", "torchserve-rest"),
    ("gRPC, direct", "tfserving-grpc", "torchserve-grpc"),
    ("REST via the gateway", "gateway/tfserving-rest", "gateway/torchserve-rest"),
    ("gateway -> gRPC backends", "gateway/tfserving-grpc", "gateway/torchserve-grpc"),
    ("embedded in the gateway", "gateway/embedded-tensorflow", "gateway/embedded-pytorch"),
    ("REST, direct: TF Serving vs Triton", "tfserving-rest", "v2-rest"),
    ("gRPC, direct: TF Serving vs Triton", "tfserving-grpc", "v2-grpc"),
)
"""TensorFlow side vs PyTorch side (TorchServe, and Triton serving the same TorchScript), compared
metric by metric (REST vs REST is the headline). Triton's targets are named by its protocol, ``v2-*``,
which is also the gateway backend that reaches it."""

GATEWAY_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (target.name, target.backend)
    for target in TARGETS
    if target.path == "gateway" and target.backend is not None
)
"""(via gateway, direct) pairs: the gateway-added latency per backend is their difference."""


def target(name: str) -> Target:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(_BY_NAME)}") from None


def select_targets(names: str, skip: str = "") -> list[Target]:
    """``all``, ``direct``, ``gateway``, ``rest``, ``grpc`` or a comma-separated list of target names."""
    groups = {
        "all": TARGETS,
        "direct": tuple(t for t in TARGETS if t.path == "direct"),
        "gateway": tuple(t for t in TARGETS if t.via_gateway),
        "rest": tuple(t for t in TARGETS if t.protocol == "rest"),
        "grpc": tuple(t for t in TARGETS if "grpc" in (t.backend or "")),
    }
    chosen: list[Target] = []
    for part in (item.strip() for item in names.split(",")):
        if not part:
            continue
        for found in groups[part] if part in groups else (target(part),):
            if found not in chosen:
                chosen.append(found)
    skipped = {target(part.strip()).name for part in skip.split(",") if part.strip()}
    return [t for t in chosen if t.name not in skipped and t.path != "calibration"]
