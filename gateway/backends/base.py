"""The one small interface every backend implements, and the values it exchanges."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from gateway.registry import BackendSpec
    from gateway.settings import Settings

__all__ = ["Backend", "ModelStatus", "Prediction", "remaining"]


class Prediction(NamedTuple):
    """What a backend answers: float32 ``[N, 10]`` probabilities and the version that computed them
    (a NamedTuple: built for every request, and a tuple costs a third of a frozen dataclass to build)."""

    probabilities: np.ndarray
    version: str | None
    backend_seconds: float = 0.0


@dataclass(frozen=True)
class ModelStatus:
    ready: bool
    versions: list[int] = field(default_factory=list)
    detail: str = ""


class Backend(abc.ABC):
    """One model server (or the in-process runtime) reachable over one transport.

    Implementations raise only :mod:`gateway.errors` classes: foreign failures are translated
    at this boundary. Every call takes a ``timeout`` in seconds and never waits much longer.
    """

    name: str
    framework: str  # "tensorflow" or "pytorch": failover and shadow prefer the other one

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        """The backend a registry entry names (:mod:`gateway.registry`); addresses come from ``settings``."""
        raise NotImplementedError(f"{cls.__name__} is not built from settings")

    @abc.abstractmethod
    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        """Probabilities for float32 ``images [N, *item]``; ``version=None`` is the server's default."""

    @abc.abstractmethod
    def status(self, model: str, timeout: float) -> ModelStatus:
        """Whether the model can answer now, and which versions are loaded (when the server says)."""

    def warm_up(self, model: str) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Load what the first request would otherwise load (embedded backends)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release pools, channels and models."""


def remaining(deadline: float) -> float:
    """Seconds left until the ``time.monotonic()`` deadline (may be negative)."""
    return deadline - time.monotonic()
