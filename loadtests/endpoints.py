"""Where each target lives: every address comes from here, never from code (any host works).

Defaults are what ``make serve`` (``SERVING_*`` settings) and ``make gateway`` listen on; flags of
``python -m loadtests compare`` override them, and ``--start`` replaces them with the servers it starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadtests.targets import Target

__all__ = ["Endpoints", "default_endpoints"]


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
        return {
            "tfserving-rest": self.tfserving_rest_url,
            "tfserving-grpc": self.tfserving_grpc_target,
            "torchserve-rest": self.torchserve_url,
            "torchserve-grpc": self.torchserve_grpc_target,
            "v2-rest": self.triton_url,
            "v2-grpc": self.triton_grpc_target,
        }[target.name]

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


def default_endpoints() -> Endpoints:
    from gateway.settings import Settings
    from serving.settings import LOOPBACK, settings_from_env

    serving = settings_from_env()
    key_file = Path(serving.key_file)
    return Endpoints(
        tfserving_rest_url=f"http://{serving.host}:{serving.tf_rest_port}",
        tfserving_grpc_target=f"{serving.host}:{serving.tf_grpc_port}",
        torchserve_url=f"http://{serving.host}:{serving.ts_inference_port}",
        torchserve_grpc_target=f"{serving.host}:{serving.ts_grpc_inference_port}",
        torchserve_key_file=str(key_file) if serving.ts_token_auth else "",
        torchserve_management_url=f"http://{LOOPBACK}:{serving.ts_management_port}",
        triton_url=f"http://{serving.host}:{serving.triton_http_port}",
        triton_grpc_target=f"{serving.host}:{serving.triton_grpc_port}",
        gateway_url=f"http://{Settings().bind}",
    )
