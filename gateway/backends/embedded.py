"""In-process backends: the store's SavedModel through TensorFlow, its TorchScript through torch.

The zero-server default. Models load lazily per version (or at worker start with ``warm_up``) and stay
cached for the worker's life. A call cannot be interrupted, so the deadline is checked before it starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gateway.backends.base import Backend, ModelStatus, Prediction
from gateway.backends.translate import parse_probabilities
from gateway.codecs.tensors import ITEM_SHAPE
from gateway.errors import DeadlineExceeded, GatewayError, NotFound, Unavailable
from model_store import CONTRACT, ModelStore, StoreError, default_root

if TYPE_CHECKING:
    from gateway.registry import BackendSpec
    from gateway.settings import Settings

__all__ = ["EmbeddedBackend"]

Runner = Callable[[np.ndarray], np.ndarray]
_LATEST_TTL_S = 2.0
"""How long the store's latest version is reused: listing the store per request cost about 0.2 ms,
a third of the gateway's own work; a new export is still served within this delay."""


def _load_tensorflow(version_dir: Path, threads: int) -> Runner:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # already initialised in this process: keep the first setting
    signature = tf.saved_model.load(str(version_dir)).signatures[CONTRACT.signature_name]

    def run(images: np.ndarray) -> np.ndarray:
        outputs = signature(**{CONTRACT.input.name: tf.constant(images, dtype=tf.float32)})
        return np.asarray(outputs[CONTRACT.output.name].numpy())

    return run


def _load_torch(script_path: Path, threads: int) -> Runner:
    import torch

    torch.set_num_threads(threads)
    module = torch.jit.load(str(script_path), map_location="cpu").eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(module(torch.from_numpy(np.ascontiguousarray(images))).numpy())

    return run


class EmbeddedBackend(Backend):
    """``framework`` is "tensorflow" (SavedModel) or "pytorch" (TorchScript); one store model per name."""

    def __init__(self, name: str, framework: str, store_root: Path, threads: int = 1) -> None:
        if framework not in ("tensorflow", "pytorch"):
            raise ValueError(f"unknown framework {framework!r}")
        self.name = name
        self.framework = framework
        self._root = store_root
        self._threads = threads
        self._lock = threading.Lock()
        self._runners: dict[tuple[str, int], Runner] = {}
        self._latest: dict[str, tuple[int | None, float]] = {}
        self._stores: dict[str, ModelStore] = {}

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        root = settings.model_store or default_root()
        return cls(entry.name, entry.framework, root, settings.embedded_threads)

    def _store(self, model: str) -> ModelStore:
        store = self._stores.get(model)
        if store is None:  # built once per model: its path arithmetic cost ~0.03 ms per request
            store = self._stores[model] = ModelStore(self._root, model)
        return store

    def _latest_version(self, store: ModelStore) -> int | None:
        cached = self._latest.get(store.model_name)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _LATEST_TTL_S:
            return cached[0]
        latest = store.latest_version()
        self._latest[store.model_name] = (latest, now)
        return latest

    def _runner(self, model: str, version: int | None) -> tuple[Runner, int]:
        store = self._store(model)
        chosen = version if version is not None else self._latest_version(store)
        if chosen is None:
            raise NotFound(f"model {model!r} has no version in the store", backend=self.name)
        key = (model, chosen)
        runner = self._runners.get(key)
        if runner is not None:
            return runner, chosen
        with self._lock:
            if key not in self._runners:
                self._runners[key] = self._load(store, chosen)
            return self._runners[key], chosen

    def _load(self, store: ModelStore, version: int) -> Runner:
        try:
            store.record(version)
        except StoreError as exc:
            raise NotFound(
                f"{store.model_name} version {version} is not in the store", backend=self.name
            ) from exc
        try:
            if self.framework == "tensorflow":
                return _load_tensorflow(store.version_dir(version), self._threads)
            return _load_torch(store.torchscript_file(version), self._threads)
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise Unavailable(f"cannot load {store.model_name} v{version}: {exc}", backend=self.name) from exc

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        runner, chosen = self._runner(model, version)
        if timeout <= 0:
            raise DeadlineExceeded("deadline passed before the model ran", backend=self.name)
        started = time.perf_counter()
        try:
            output = runner(images)
        except GatewayError:
            raise
        except Exception as exc:  # a framework error inside the graph: the backend failed, not the client
            raise Unavailable(f"{self.framework} failed: {type(exc).__name__}", backend=self.name) from exc
        elapsed = time.perf_counter() - started
        return Prediction(parse_probabilities(output, len(images), self.name), str(chosen), elapsed)

    def status(self, model: str, timeout: float) -> ModelStatus:
        versions = self._store(model).versions()
        return ModelStatus(
            bool(versions), versions, "" if versions else f"no version of {model!r} in {self._root}"
        )

    def warm_up(self, model: str) -> None:
        self.predict(model, np.zeros((1, *ITEM_SHAPE), dtype=np.float32), None, 60.0)

    def close(self) -> None:
        with self._lock:
            self._runners.clear()
