"""Backends behind one interface, built by name from the registry (:mod:`gateway.registry`) and settings.

Backend names are fixed there; the routing file only refers to them, and every address comes from
:class:`gateway.settings.Settings` — a request can never make the gateway call another host.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Mapping

from gateway.backends.base import Backend, ModelStatus, Prediction, remaining
from gateway.registry import BACKEND_NAMES, BackendSpec, spec
from gateway.settings import Settings

__all__ = ["Backend", "BackendPool", "ModelStatus", "Prediction", "build", "remaining"]


def build(entry: BackendSpec, settings: Settings) -> Backend:
    """The backend ``entry`` names; its module is imported only now (TF Serving's gRPC loads TensorFlow)."""
    module, _, name = entry.backend_class.partition(":")
    cls: type[Backend] = getattr(importlib.import_module(f"gateway.backends.{module}"), name)
    return cls.from_settings(entry, settings)


class BackendPool:
    """Backends of one worker process, built on first use (so unused ones cost nothing) and shared by threads.

    Tests pass ready-made ``backends`` (fakes); those replace the registry entirely. The framework of a
    registry backend is known before it is built (failover order needs it).
    """

    def __init__(self, settings: Settings, backends: Mapping[str, Backend] | None = None) -> None:
        self._settings = settings
        self._injected = dict(backends) if backends is not None else None
        self._built: dict[str, Backend] = {}
        self._lock = threading.Lock()

    def names(self) -> Iterable[str]:
        return list(self._injected) if self._injected is not None else list(BACKEND_NAMES)

    def framework(self, name: str) -> str:
        if self._injected is not None:
            return self._injected[name].framework
        return spec(name).framework

    def get(self, name: str) -> Backend:
        if self._injected is not None:
            return self._injected[name]
        backend = self._built.get(name)
        if backend is None:
            with self._lock:
                if name not in self._built:
                    self._built[name] = build(spec(name), self._settings)
                backend = self._built[name]
        return backend

    def close(self) -> None:
        for backend in [*self._built.values(), *(self._injected or {}).values()]:
            backend.close()
