"""The measured targets: what each one calls, by which protocol, and which pairs are compared.

A *target* is one way of asking the model for a digit: a serving stack called directly (REST or gRPC),
the gateway routed to one backend (the client always speaks REST to the gateway), the gateway's
in-process (embedded) backends, and the null endpoints that calibrate the load generator itself.
Each target has exactly one Locust User class (``loadtests.users``), named here so that the runner,
the report and the locustfiles agree without importing Locust.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loadtests.backends import BACKENDS, spec
from serving.endpoints import Endpoints

__all__ = [
    "ADDRESS_OPTIONS",
    "ALL_TARGETS",
    "CALIBRATION",
    "GATEWAY_PAIRS",
    "HEADLINE_PAIRS",
    "TARGETS",
    "Target",
    "address",
    "locust_args",
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

    @property
    def api(self) -> str:
        """The API its client speaks: the server's own when direct, else TF Serving's (the gateway's)."""
        return spec(self.name).api if self.path == "direct" else "tfserving"


def _visits() -> tuple[Target, ...]:
    """Per pair of registry entries: direct A, direct B, B via the gateway, A via the gateway (the
    registry's order); a backend without a server of its own has only its gateway target."""
    targets: list[Target] = []
    for pair in zip(BACKENDS[::2], BACKENDS[1::2], strict=True):
        for entry in pair:
            if entry.direct:
                targets.append(
                    Target(
                        entry.name, f"{entry.stem}User", entry.framework, entry.protocol, "direct", entry.name
                    )
                )
        for entry in reversed(pair):
            path = "gateway" if entry.direct else "embedded"
            user = f"Gateway{entry.stem}User"
            targets.append(Target(f"gateway/{entry.name}", user, entry.framework, "rest", path, entry.name))
    return tuple(targets)


TARGETS: tuple[Target, ...] = _visits()
"""The serving targets, in the order a repetition visits them (the next repetition reverses it)."""

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
        "grpc": tuple(t for t in TARGETS if t.backend and spec(t.backend).protocol == "grpc"),
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


def address(endpoints: Endpoints, target: Target) -> str:
    """The address a target's requests go to ("" when none is configured)."""
    if target.path == "calibration":
        return endpoints.null_url if target.protocol == "rest" else endpoints.null_grpc_target
    if target.via_gateway:
        return endpoints.gateway_url
    return endpoints.of_backend(target.name)


def locust_args(endpoints: Endpoints) -> list[str]:
    """The users' address options (``loadtests.users``) for these endpoints."""
    args: list[str] = []
    for name, value in asdict(endpoints).items():
        if value and name != "torchserve_management_url":
            args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def _address_options() -> tuple[tuple[str, str], ...]:
    servers: dict[str, str] = {}
    for entry in BACKENDS:
        if entry.direct:
            what = "REST base URL" if entry.protocol == "rest" else "gRPC host:port"
            servers.setdefault(entry.endpoint.replace("_", "-"), f"{entry.label} {what}")
    return (
        *servers.items(),
        ("torchserve-key-file", "TorchServe key_file.json (token auth; LOADTEST_TORCHSERVE_TOKEN overrides)"),
        ("gateway-url", "gateway base URL"),
    )


ADDRESS_OPTIONS = _address_options()
"""(option, help) of every address the runner and the Locust users take."""
