"""Where each part of a serving stack answers, and which server hosts each of the gateway's backends.

Every address comes from here, never from code (any host works). :func:`default_endpoints` gives what
``make serve`` (``SERVING_*`` settings) and ``make gateway`` listen on; :func:`serving.stack.start_stack`
gives the addresses of the servers it starts on free loopback ports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from gateway import registry

__all__ = ["HOSTING", "REST_PATHS", "Endpoints", "Hosting", "default_endpoints"]

REST_PATHS = {
    "tfserving": "/v1/models/{model}:predict",
    "torchserve": "/predictions/{model}",
    "v2": "/v2/models/{model}/infer",
}
"""The predict path of each server API; the gateway answers TF Serving's."""


@dataclass(frozen=True)
class Hosting:
    """The server behind one of the gateway's backends (in-process backends have none)."""

    server: str
    """The ``python -m serving`` component that runs it."""
    api: str
    """The server's own API, which a direct client speaks: ``tfserving``, ``torchserve`` or ``v2``."""
    endpoint: str
    """Its address field of :class:`Endpoints`."""
    port: str
    """The :class:`serving.settings.ServingSettings` port its server listens on."""


HOSTING: dict[str, Hosting] = {
    "tfserving-rest": Hosting("tfserving", "tfserving", "tfserving_rest_url", "tf_rest_port"),
    "torchserve-rest": Hosting("torchserve", "torchserve", "torchserve_url", "ts_inference_port"),
    "tfserving-grpc": Hosting("tfserving", "tfserving", "tfserving_grpc_target", "tf_grpc_port"),
    "torchserve-grpc": Hosting(
        "torchserve", "torchserve", "torchserve_grpc_target", "ts_grpc_inference_port"
    ),
    "v2-rest": Hosting("triton", "v2", "triton_url", "triton_http_port"),
    "v2-grpc": Hosting("triton", "v2", "triton_grpc_target", "triton_grpc_port"),
}  # fmt: skip
"""Gateway backend name (:mod:`gateway.registry`) -> the server that hosts it."""


@dataclass(frozen=True)
class Endpoints:
    tfserving_rest_url: str = ""
    tfserving_grpc_target: str = ""
    torchserve_url: str = ""
    torchserve_grpc_target: str = ""
    torchserve_key_file: str = ""
    """TorchServe's key_file.json (token auth on); the token itself never appears on a command line."""
    torchserve_management_url: str = ""
    triton_url: str = ""
    triton_grpc_target: str = ""
    gateway_url: str = ""
    null_url: str = ""
    null_grpc_target: str = ""

    def of_backend(self, backend: str) -> str:
        """The address of the server behind a gateway backend ("" when none is configured)."""
        return str(getattr(self, HOSTING[backend].endpoint))

    def with_overrides(self, **changes: Any) -> Endpoints:
        return replace(self, **{key: value for key, value in changes.items() if value})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def default_endpoints() -> Endpoints:
    from gateway.settings import Settings
    from serving.settings import LOOPBACK, settings_from_env

    serving = settings_from_env()
    servers: dict[str, str] = {}
    for backend, hosting in HOSTING.items():
        scheme = "http://" if registry.spec(backend).protocol == "rest" else ""
        servers[hosting.endpoint] = f"{scheme}{serving.host}:{getattr(serving, hosting.port)}"
    return Endpoints(
        **servers,
        torchserve_key_file=str(serving.key_file) if serving.ts_token_auth else "",
        torchserve_management_url=f"http://{LOOPBACK}:{serving.ts_management_port}",
        gateway_url=f"http://{Settings().bind}",
    )
