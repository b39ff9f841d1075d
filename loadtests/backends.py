"""The gateway's backends as the load tests see them: the gateway's own facts
(:mod:`gateway.registry`) plus what measuring and reporting need — the server that hosts each one, the
API a direct client speaks, its address option and port, its Locust users, label and chart colour.

Every consumer in ``loadtests`` and ``gatewaybench`` reads backends from here; the gateway never does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gateway import registry

__all__ = ["BACKENDS", "BACKEND_NAMES", "StackBackend", "spec"]


@dataclass(frozen=True)
class StackBackend(registry.BackendSpec):
    label: str = ""
    """Human name of what serves it (TF Serving is named as the stand-in by the report where it is one)."""
    stem: str = ""
    """Locust user class names: ``<stem>User`` calls the server directly, ``Gateway<stem>User`` via us."""
    color: str = ""
    """Chart colour of its targets."""
    server: str = ""
    """The ``python -m serving`` stack behind it (what ``--start`` runs); empty for in-process."""
    api: str = ""
    """The server's own API, which a direct client speaks: ``tfserving``, ``torchserve`` or ``v2``."""
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


_MEASURING: dict[str, dict[str, str]] = {
    "tfserving-rest": dict(label="TF Serving", stem="TFServingRest", color="#1f77b4", server="tfserving",
                           api="tfserving", endpoint="tfserving_rest_url", port="tf_rest_port"),
    "torchserve-rest": dict(label="TorchServe", stem="TorchServeRest", color="#d62728", server="torchserve",
                            api="torchserve", endpoint="torchserve_url", port="ts_inference_port"),
    "tfserving-grpc": dict(label="TF Serving", stem="TFServingGrpc", color="#17becf", server="tfserving",
                           api="tfserving", endpoint="tfserving_grpc_target", port="tf_grpc_port"),
    "torchserve-grpc": dict(label="TorchServe", stem="TorchServeGrpc", color="#ff7f0e",
                            server="torchserve", api="torchserve", endpoint="torchserve_grpc_target",
                            port="ts_grpc_inference_port"),
    "v2-rest": dict(label="Triton", stem="V2Rest", color="#8c564b", server="triton", api="v2",
                    endpoint="triton_url", port="triton_http_port"),
    "v2-grpc": dict(label="Triton", stem="V2Grpc", color="#e377c2", server="triton", api="v2",
                    endpoint="triton_grpc_target", port="triton_grpc_port"),
    "embedded-tensorflow": dict(label="embedded TensorFlow", stem="EmbeddedTensorflow", color="#2ca02c"),
    "embedded-pytorch": dict(label="embedded PyTorch", stem="EmbeddedPytorch", color="#9467bd"),
}  # fmt: skip

if set(_MEASURING) != set(registry.BACKEND_NAMES):  # a new gateway backend needs its entry here too
    raise ImportError(f"loadtests.backends and gateway.registry disagree: {sorted(_MEASURING)}")

BACKENDS: tuple[StackBackend, ...] = tuple(
    StackBackend(
        **{f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}, **_MEASURING[entry.name]
    )
    for entry in registry.BACKENDS
)
"""The gateway's order: each pair is visited A B B' A' (direct A, direct B, B via the gateway, A via
it), so that compared targets run close in time."""

BACKEND_NAMES: tuple[str, ...] = registry.BACKEND_NAMES
_BY_NAME = {entry.name: entry for entry in BACKENDS}


def spec(name: str) -> StackBackend:
    """The entry called ``name`` (``KeyError`` for an unknown one)."""
    return _BY_NAME[name]
