"""Fakes for gateway unit tests: in-memory backends injected by name, no network, no models."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.backends.base import Backend, ModelStatus, Prediction
from gateway.settings import Settings


class FakeBackend(Backend):
    """Answers ``digit`` for every image, or raises ``error``; counts calls."""

    def __init__(self, name: str, framework: str, digit: int = 3, version: str = "1") -> None:
        self.name = name
        self.framework = framework
        self.digit = digit
        self.version = version
        self.error: Exception | None = None
        self.ready = True
        self.calls = 0
        self.sizes: list[int] = []
        """Images per call, in call order."""
        self.last_images: np.ndarray | None = None
        self.hook: Callable[[], None] | None = None

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        self.calls += 1
        self.sizes.append(len(images))
        self.last_images = images
        if self.hook is not None:
            self.hook()
        if self.error is not None:
            raise self.error
        probabilities = np.full((len(images), 10), 0.01, dtype=np.float32)
        probabilities[:, self.digit] = 0.91
        return Prediction(probabilities, str(version) if version is not None else self.version, 0.0005)

    def status(self, model: str, timeout: float) -> ModelStatus:
        return ModelStatus(self.ready, [1] if self.ready else [], "" if self.ready else "down")


@pytest.fixture
def fakes() -> dict[str, FakeBackend]:
    return {"tf": FakeBackend("tf", "tensorflow", digit=3), "pt": FakeBackend("pt", "pytorch", digit=3)}


@pytest.fixture
def make_app(fakes: dict[str, FakeBackend]) -> Callable[..., Flask]:
    def build(**overrides: object) -> Flask:
        return create_app(Settings().with_overrides(warmup=False, **overrides), backends=fakes)

    return build


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    return make_app().test_client()
