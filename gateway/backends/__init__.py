"""Backends behind one interface, and the registry that builds them by name from settings.

Backend names are fixed here; the routing file only refers to them, and every address comes from
:class:`gateway.settings.Settings` — a request can never make the gateway call another host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from gateway.backends.base import Backend, ModelStatus, Prediction, remaining
from gateway.backends.http import CurlTransport
from gateway.settings import Settings
from serving.torchserve.tokens import TokenSource

__all__ = ["BACKEND_FACTORIES", "Backend", "BackendPool", "ModelStatus", "Prediction", "remaining"]

Factory = Callable[[str, Settings], Backend]
V2_FRAMEWORK = "pytorch"
"""What the V2 server here runs: the TorchScript export (Triton). Failover and shadow pair it with TF."""


def _store_root(settings: Settings) -> Path:
    from model_store import default_root

    return settings.model_store or default_root()


def _tfserving_rest(name: str, settings: Settings) -> Backend:
    from gateway.backends.tfserving import TFServingRestBackend

    return TFServingRestBackend(
        name, settings.tfserving_rest_url, CurlTransport(settings.backend_max_response_bytes)
    )


def _tfserving_grpc(name: str, settings: Settings) -> Backend:
    from gateway.backends.tfserving import TFServingGrpcBackend

    return TFServingGrpcBackend(name, settings.tfserving_grpc_target)


def _tokens(settings: Settings) -> TokenSource:
    return TokenSource(
        settings.torchserve_key_file,
        settings.torchserve_management_url or None,
        static_token=settings.torchserve_token,
    )


def _torchserve_rest(name: str, settings: Settings) -> Backend:
    from gateway.backends.torchserve import TorchServeRestBackend

    transport = CurlTransport(settings.backend_max_response_bytes)
    return TorchServeRestBackend(name, settings.torchserve_rest_url, transport, _tokens(settings))


def _torchserve_grpc(name: str, settings: Settings) -> Backend:
    from gateway.backends.torchserve import TorchServeGrpcBackend

    return TorchServeGrpcBackend(name, settings.torchserve_grpc_target, _tokens(settings))


def _v2_rest(name: str, settings: Settings) -> Backend:
    from gateway.backends.v2 import V2RestBackend

    transport = CurlTransport(settings.backend_max_response_bytes)
    return V2RestBackend(name, settings.v2_rest_url, transport, V2_FRAMEWORK)


def _v2_grpc(name: str, settings: Settings) -> Backend:
    from gateway.backends.v2 import V2GrpcBackend

    return V2GrpcBackend(name, settings.v2_grpc_target, V2_FRAMEWORK)


def _embedded(framework: str) -> Factory:
    def build(name: str, settings: Settings) -> Backend:
        from gateway.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(name, framework, _store_root(settings), settings.embedded_threads)

    return build


BACKEND_FACTORIES: dict[str, tuple[str, Factory]] = {
    "tfserving-rest": ("tensorflow", _tfserving_rest),
    "tfserving-grpc": ("tensorflow", _tfserving_grpc),
    "torchserve-rest": ("pytorch", _torchserve_rest),
    "torchserve-grpc": ("pytorch", _torchserve_grpc),
    "embedded-tensorflow": ("tensorflow", _embedded("tensorflow")),
    "embedded-pytorch": ("pytorch", _embedded("pytorch")),
    "v2-rest": (V2_FRAMEWORK, _v2_rest),
    "v2-grpc": (V2_FRAMEWORK, _v2_grpc),
}
"""name -> (framework, factory). The framework is known before a backend is built (for failover order)."""


class BackendPool:
    """Backends of one worker process, built on first use (so unused ones cost nothing) and shared by threads.

    Tests pass ready-made ``backends`` (fakes); those replace the registry entirely.
    """

    def __init__(self, settings: Settings, backends: Mapping[str, Backend] | None = None) -> None:
        self._settings = settings
        self._injected = dict(backends) if backends is not None else None
        self._built: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def names(self) -> Iterable[str]:
        return list(self._injected) if self._injected is not None else list(BACKEND_FACTORIES)

    def framework(self, name: str) -> str:
        if self._injected is not None:
            return self._injected[name].framework
        return BACKEND_FACTORIES[name][0]

    def get(self, name: str) -> Backend:
        if self._injected is not None:
            return self._injected[name]
        backend = self._built.get(name)
        if backend is None:
            with self._lock:
                if name not in self._built:
                    self._built[name] = BACKEND_FACTORIES[name][1](name, self._settings)
                backend = self._built[name]
        return backend

    def close(self) -> None:
        for backend in [*self._built.values(), *(self._injected or {}).values()]:
            backend.close()
