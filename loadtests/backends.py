"""The gateway's backends as the load tests see them: the gateway's own facts
(:mod:`gateway.registry`), the server that hosts each one (:data:`serving.endpoints.HOSTING`) and what
reporting needs: its Locust users, label and chart colour.

Every consumer in ``loadtests`` and ``gatewaybench`` reads backends from here; the gateway never does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gateway import registry
from serving.endpoints import HOSTING

__all__ = ["BACKENDS", "BACKEND_NAMES", "StackBackend", "spec"]


@dataclass(frozen=True)
class StackBackend(registry.BackendSpec):
    label: str = ""
    """Human name of what serves it (TF Serving is named as the stand-in by the report where it is one)."""
    stem: str = ""
    """Locust user class names: ``<stem>User`` calls the server directly, ``Gateway<stem>User`` via us."""
    color: str = ""
    """Chart colour of its targets."""
    # Its server's fields (serving.endpoints.Hosting); empty for an in-process backend.
    server: str = ""
    api: str = ""
    endpoint: str = ""
    """Its address field of :class:`serving.endpoints.Endpoints` (option ``--<field-with-dashes>``)."""
    port: str = ""

    @property
    def direct(self) -> bool:
        """Whether a separate server answers it (so the load tests can also call that server directly)."""
        return bool(self.server)

    @property
    def protocol_label(self) -> str:
        return {"rest": "REST", "grpc": "gRPC"}.get(self.protocol, "in-process")


_PRESENTATION: dict[str, dict[str, str]] = {
    "tfserving-rest": dict(label="TF Serving", stem="TFServingRest", color="#1f77b4"),
    "torchserve-rest": dict(label="TorchServe", stem="TorchServeRest", color="#d62728"),
    "tfserving-grpc": dict(label="TF Serving", stem="TFServingGrpc", color="#17becf"),
    "torchserve-grpc": dict(label="TorchServe", stem="TorchServeGrpc", color="#ff7f0e"),
    "v2-rest": dict(label="Triton", stem="V2Rest", color="#8c564b"),
    "v2-grpc": dict(label="Triton", stem="V2Grpc", color="#e377c2"),
    "embedded-tensorflow": dict(label="embedded TensorFlow", stem="EmbeddedTensorflow", color="#2ca02c"),
    "embedded-pytorch": dict(label="embedded PyTorch", stem="EmbeddedPytorch", color="#9467bd"),
}

if set(_PRESENTATION) != set(registry.BACKEND_NAMES):  # a new gateway backend needs its entry here too
    raise ImportError(f"loadtests.backends and gateway.registry disagree: {sorted(_PRESENTATION)}")


def _hosting(name: str) -> dict[str, str]:
    hosting = HOSTING.get(name)
    return dataclasses.asdict(hosting) if hosting else {}


BACKENDS: tuple[StackBackend, ...] = tuple(
    StackBackend(
        **{f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)},
        **_PRESENTATION[entry.name],
        **_hosting(entry.name),
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
