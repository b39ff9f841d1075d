"""Every backend the gateway can call, in one table: the gateway builds backends from it and checks
routing files against it.

Only what the gateway itself needs is here (name, framework, protocol, class, address setting); the
load tests add their own facts per backend (labels, colours, Locust users, the server that hosts it)
in :mod:`loadtests.backends`. Adding a backend is one entry here and one
:class:`gateway.backends.base.Backend` subclass. Only the standard library is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BACKENDS", "BACKEND_NAMES", "BackendSpec", "spec"]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    """Routing-file name and ``X-Gateway-Backend`` value."""
    framework: str
    """What computes the answer, ``tensorflow`` or ``pytorch`` (failover and shadow pair frameworks)."""
    protocol: str
    """How the gateway reaches it: ``rest``, ``grpc`` or ``in-process``."""
    backend_class: str
    """``module:Class`` in :mod:`gateway.backends`, imported when the backend is first used."""
    address: str = ""
    """Its address field of :class:`gateway.settings.Settings` (``GATEWAY_<FIELD>``); empty in process."""

    @property
    def in_process(self) -> bool:
        """Whether the model runs inside the gateway's worker (no server of its own)."""
        return self.protocol == "in-process"


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        "tfserving-rest", "tensorflow", "rest", "tfserving:TFServingRestBackend", "tfserving_rest_url"
    ),
    BackendSpec(
        "torchserve-rest", "pytorch", "rest", "torchserve:TorchServeRestBackend", "torchserve_rest_url"
    ),
    BackendSpec(
        "tfserving-grpc", "tensorflow", "grpc", "tfserving:TFServingGrpcBackend", "tfserving_grpc_target"
    ),
    BackendSpec(
        "torchserve-grpc", "pytorch", "grpc", "torchserve:TorchServeGrpcBackend", "torchserve_grpc_target"
    ),
    # Any Open Inference Protocol server; `make serve` runs Triton with the TorchScript export.
    BackendSpec("v2-rest", "pytorch", "rest", "v2:V2RestBackend", "v2_rest_url"),
    BackendSpec("v2-grpc", "pytorch", "grpc", "v2:V2GrpcBackend", "v2_grpc_target"),
    BackendSpec("embedded-tensorflow", "tensorflow", "in-process", "embedded:EmbeddedBackend"),
    BackendSpec("embedded-pytorch", "pytorch", "in-process", "embedded:EmbeddedBackend"),
)
"""In pairs of the two frameworks (the load tests visit them in this order)."""

BACKEND_NAMES: tuple[str, ...] = tuple(entry.name for entry in BACKENDS)
_BY_NAME = {entry.name: entry for entry in BACKENDS}


def spec(name: str) -> BackendSpec:
    """The entry called ``name`` (``KeyError`` for an unknown one)."""
    return _BY_NAME[name]
