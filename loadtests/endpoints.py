"""Where each target lives: every address comes from here, never from code (any host works).

Defaults are what ``make serve`` (``SERVING_*`` settings) and ``make gateway`` listen on; flags of
``python -m loadtests compare`` override them, and ``--start`` replaces them with the servers it starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadtests.backends import BACKENDS, spec
from loadtests.targets import Target

__all__ = ["ADDRESS_OPTIONS", "REST_PATHS", "Endpoints", "default_endpoints"]

REST_PATHS = {
    "tfserving": "/v1/models/{model}:predict",
    "torchserve": "/predictions/{model}",
    "v2": "/v2/models/{model}/infer",
}
"""The predict path of each server API (``Target.api``); the gateway answers TF Serving's."""


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

    def address(self, target: Target) -> str:
        """The address a target's requests go to ("" when none is configured)."""
        if target.path == "calibration":
            return self.null_url if target.protocol == "rest" else self.null_grpc_target
        if target.via_gateway:
            return self.gateway_url
        return str(getattr(self, spec(target.name).endpoint))

    def locust_args(self) -> list[str]:
        """The users' address options (``loadtests.users``) for these endpoints."""
        args: list[str] = []
        for name, value in asdict(self).items():
            if value and name != "torchserve_management_url":
                args += [f"--{name.replace('_', '-')}", str(value)]
        return args

    def with_overrides(self, **changes: Any) -> Endpoints:
        return replace(self, **{key: value for key, value in changes.items() if value})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


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


def default_endpoints() -> Endpoints:
    from gateway.settings import Settings
    from serving.settings import LOOPBACK, settings_from_env

    serving = settings_from_env()
    key_file = Path(serving.key_file)
    servers: dict[str, str] = {}
    for entry in (entry for entry in BACKENDS if entry.direct):
        scheme = "http://" if entry.protocol == "rest" else ""
        servers[entry.endpoint] = f"{scheme}{serving.host}:{getattr(serving, entry.port)}"
    return Endpoints(
        **servers,
        torchserve_key_file=str(key_file) if serving.ts_token_auth else "",
        torchserve_management_url=f"http://{LOOPBACK}:{serving.ts_management_port}",
        gateway_url=f"http://{Settings().bind}",
    )
