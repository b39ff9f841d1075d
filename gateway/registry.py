"""Every backend the gateway can call, in one table; everything else that names a backend derives from it.

The gateway builds backends from it and checks routing files against it; the load tests take their
targets, addresses, option names, labels and chart colours from it. Adding a backend is one entry
here and one :class:`gateway.backends.base.Backend` subclass (plus a Locust user when the load tests
call its server directly). Only the standard library is imported, so ``loadtests`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BACKENDS", "BACKEND_NAMES", "BackendSpec", "spec"]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    """Routing-file name, ``X-Gateway-Backend`` value and load-test target (``gateway/<name>`` via it)."""
    framework: str
    """What computes the answer, ``tensorflow`` or ``pytorch`` (failover and shadow pair frameworks)."""
    protocol: str
    """How the gateway reaches it: ``rest``, ``grpc`` or ``in-process``."""
    backend_class: str
    """``module:Class`` in :mod:`gateway.backends`, imported when the backend is first used."""
    label: str
    """Human name of what serves it (TF Serving is named as the stand-in by the report where it is one)."""
    stem: str
    """Locust user class names: ``<stem>User`` calls the server directly, ``Gateway<stem>User`` via us."""
    color: str
    """Chart colour of its targets."""
    server: str = ""
    """The ``python -m serving`` stack behind it (what ``--start`` runs); empty for in-process."""
    api: str = ""
    """The server's own API, which a direct client speaks: ``tfserving``, ``torchserve`` or ``v2``."""
    address: str = ""
    """Its address field of :class:`gateway.settings.Settings` (``GATEWAY_<FIELD>``)."""
    endpoint: str = ""
    """Its address field of ``loadtests.endpoints.Endpoints`` (option ``--<field-with-dashes>``)."""
    port: str = ""
    """The :class:`serving.settings.ServingSettings` port its server listens on."""

    @property
    def direct(self) -> bool:
        """Whether a separate server answers it (so the load tests can also call that server directly)."""
        return bool(self.server)

    @property
    def protocol_label(self) -> str:
        return {"rest": "REST", "grpc": "gRPC"}.get(self.protocol, "in-process")


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        name="tfserving-rest", framework="tensorflow", protocol="rest",
        backend_class="tfserving:TFServingRestBackend", label="TF Serving", stem="TFServingRest",
        color="#1f77b4", server="tfserving", api="tfserving",
        address="tfserving_rest_url", endpoint="tfserving_rest_url", port="tf_rest_port",
    ),
    BackendSpec(
        name="torchserve-rest", framework="pytorch", protocol="rest",
        backend_class="torchserve:TorchServeRestBackend", label="TorchServe", stem="TorchServeRest",
        color="#d62728", server="torchserve", api="torchserve",
        address="torchserve_rest_url", endpoint="torchserve_url", port="ts_inference_port",
    ),
    BackendSpec(
        name="tfserving-grpc", framework="tensorflow", protocol="grpc",
        backend_class="tfserving:TFServingGrpcBackend", label="TF Serving", stem="TFServingGrpc",
        color="#17becf", server="tfserving", api="tfserving",
        address="tfserving_grpc_target", endpoint="tfserving_grpc_target", port="tf_grpc_port",
    ),
    BackendSpec(
        name="torchserve-grpc", framework="pytorch", protocol="grpc",
        backend_class="torchserve:TorchServeGrpcBackend", label="TorchServe", stem="TorchServeGrpc",
        color="#ff7f0e", server="torchserve", api="torchserve",
        address="torchserve_grpc_target", endpoint="torchserve_grpc_target", port="ts_grpc_inference_port",
    ),
    # Any Open Inference Protocol server; `make serve` runs Triton with the TorchScript export.
    BackendSpec(
        name="v2-rest", framework="pytorch", protocol="rest",
        backend_class="v2:V2RestBackend", label="Triton", stem="V2Rest",
        color="#8c564b", server="triton", api="v2",
        address="v2_rest_url", endpoint="triton_url", port="triton_http_port",
    ),
    BackendSpec(
        name="v2-grpc", framework="pytorch", protocol="grpc",
        backend_class="v2:V2GrpcBackend", label="Triton", stem="V2Grpc",
        color="#e377c2", server="triton", api="v2",
        address="v2_grpc_target", endpoint="triton_grpc_target", port="triton_grpc_port",
    ),
    BackendSpec(
        name="embedded-tensorflow", framework="tensorflow", protocol="in-process",
        backend_class="embedded:EmbeddedBackend", label="embedded TensorFlow", stem="EmbeddedTensorflow",
        color="#2ca02c",
    ),
    BackendSpec(
        name="embedded-pytorch", framework="pytorch", protocol="in-process",
        backend_class="embedded:EmbeddedBackend", label="embedded PyTorch", stem="EmbeddedPytorch",
        color="#9467bd",
    ),
)  # fmt: skip
"""In load-test order: each pair is visited A B B' A' (direct A, direct B, B via the gateway, A via it),
so that compared targets run close in time and slow drifts of a shared machine bias them less."""

BACKEND_NAMES: tuple[str, ...] = tuple(entry.name for entry in BACKENDS)
_BY_NAME = {entry.name: entry for entry in BACKENDS}


def spec(name: str) -> BackendSpec:
    """The entry called ``name`` (``KeyError`` for an unknown one)."""
    return _BY_NAME[name]
