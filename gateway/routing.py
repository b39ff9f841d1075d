"""The routing file: per-model traffic policy, validated on load and reloaded when it changes.

Shape (see ``gateway/routing.example.yaml``)::

    models:
      mnist:
        backends: {tfserving-rest: 90, torchserve-rest: 10}   # name -> weight (0: explicit choice only)
        versions: {1: 95, 2: 5}                               # optional weighted version split
        labels: {stable: 1, canary: 2}                        # /labels/<l> -> version
        sticky_header: X-Client-Id                            # same key -> same backend and version
        shadow: {percent: 10, backend: torchserve-rest}       # mirror a share to another backend
        failover: true                                        # try the other framework on failure
        retry_budget: {ratio: 0.2, min_concurrent: 3}         # retries in flight (Envoy's budget)
        batching: {enabled: true, max_batch: 32, max_delay_ms: 1}   # gateway micro-batching
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "BatchingConfig",
    "ModelRoute",
    "RetryBudgetConfig",
    "RoutingError",
    "RoutingSource",
    "RoutingTable",
    "ShadowConfig",
]

log = logging.getLogger(__name__)


class RoutingError(ValueError):
    """The routing file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class ShadowConfig:
    percent: float = 0.0
    """Share of requests (0-100) mirrored to ``backend``."""
    backend: str | None = None
    """Shadow target; default: the first listed backend of another framework than the primary's."""


@dataclass(frozen=True)
class RetryBudgetConfig:
    """Envoy's retry budget: retries in flight may be at most ``ratio`` of the requests in flight,
    and ``min_concurrent`` retries are always allowed however few requests there are."""

    ratio: float = 0.2
    min_concurrent: int = 3


@dataclass(frozen=True)
class BatchingConfig:
    """Gateway micro-batching (``gateway.batching``): requests that arrive while a call to the same
    backend and version is in flight share the next call."""

    enabled: bool = False
    max_batch: int = 32
    """Most images in one backend call; a single request larger than this goes alone."""
    max_delay_ms: float = 1.0
    """Longest a batch may wait to fill, and only when requests are already queued (never a lone one)."""


@dataclass(frozen=True)
class ModelRoute:
    name: str
    backends: dict[str, float]
    versions: dict[int, float] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    sticky_header: str | None = None
    shadow: ShadowConfig = ShadowConfig()
    failover: bool = True
    retry_budget: RetryBudgetConfig = RetryBudgetConfig()
    batching: BatchingConfig = BatchingConfig()


@dataclass(frozen=True)
class RoutingTable:
    models: dict[str, ModelRoute]
    source: str = "<defaults>"

    def backend_names(self) -> set[str]:
        return {name for route in self.models.values() for name in route.backends}

    @classmethod
    def parse(cls, data: Any, source: str, known_backends: Iterable[str]) -> RoutingTable:
        known = set(known_backends)
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
            raise RoutingError(f"{source}: expected a mapping with a non-empty 'models' mapping")
        models = {
            str(name): _parse_route(str(name), spec, f"{source}: models.{name}", known)
            for name, spec in data["models"].items()
        }
        return cls(models=models, source=source)

    @classmethod
    def load(cls, path: Path, known_backends: Iterable[str]) -> RoutingTable:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RoutingError(f"{path}: {exc}") from exc
        return cls.loads(raw, str(path), known_backends)

    @classmethod
    def loads(cls, raw: bytes, source: str, known_backends: Iterable[str]) -> RoutingTable:
        """Parse the bytes of a routing file (exactly these bytes: no second read of the file)."""
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RoutingError(f"{source}: {exc}") from exc
        return cls.parse(data, source, known_backends)


def _weights(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise RoutingError(f"{where}: expected a non-empty mapping of name -> weight")
    weights: dict[str, float] = {}
    for key, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise RoutingError(f"{where}.{key}: weight must be a number >= 0")
        weights[str(key)] = float(weight)
    return weights


def _parse_route(name: str, spec: Any, where: str, known: set[str]) -> ModelRoute:
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: expected a mapping")
    allowed = {
        "backends",
        "versions",
        "labels",
        "sticky_header",
        "shadow",
        "failover",
        "retry_budget",
        "batching",
    }
    if extra := sorted(set(spec) - allowed):
        raise RoutingError(f"{where}: unknown key(s) {extra}")
    backends = _weights(spec.get("backends"), f"{where}.backends")
    if unknown := sorted(set(backends) - known):
        raise RoutingError(f"{where}.backends: unknown backend(s) {unknown}; known: {sorted(known)}")
    if sum(backends.values()) <= 0:
        raise RoutingError(f"{where}.backends: at least one weight must be positive")
    versions: dict[int, float] = {}
    if spec.get("versions") is not None:
        raw_versions = _weights(spec["versions"], f"{where}.versions")
        try:
            versions = {int(key): weight for key, weight in raw_versions.items()}
        except ValueError as exc:
            raise RoutingError(f"{where}.versions: versions are integers") from exc
    labels_spec = spec.get("labels") or {}
    if not isinstance(labels_spec, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels_spec.values()
    ):
        raise RoutingError(f"{where}.labels: expected a mapping of label -> integer version")
    shadow = _parse_shadow(spec.get("shadow"), f"{where}.shadow", known)
    budget_spec = spec.get("retry_budget") or {}
    if not isinstance(budget_spec, dict):
        raise RoutingError(f"{where}.retry_budget: expected a mapping")
    budget = _parse_retry_budget(budget_spec, f"{where}.retry_budget")
    failover = spec.get("failover", True)
    sticky = spec.get("sticky_header")
    if not isinstance(failover, bool) or (sticky is not None and not isinstance(sticky, str)):
        raise RoutingError(f"{where}: failover is a boolean and sticky_header a header name")
    return ModelRoute(
        name=name,
        backends=backends,
        versions=versions,
        labels={str(k): int(v) for k, v in labels_spec.items()},
        sticky_header=sticky,
        shadow=shadow,
        failover=failover,
        retry_budget=budget,
        batching=_parse_batching(spec.get("batching"), f"{where}.batching"),
    )


def _parse_retry_budget(spec: dict[str, Any], where: str) -> RetryBudgetConfig:
    if {"min_retries", "window_s"} & set(spec):
        raise RoutingError(
            f"{where}: the budget counts retries in flight now, not retries per window: "
            "drop window_s and rename min_retries to min_concurrent"
        )
    if extra := sorted(set(spec) - {"ratio", "min_concurrent"}):
        raise RoutingError(f"{where}: unknown key(s) {extra}; known: ['min_concurrent', 'ratio']")
    budget = RetryBudgetConfig(**spec)
    if not _number(budget.ratio) or budget.ratio < 0:
        raise RoutingError(f"{where}.ratio: expected a number >= 0")
    floor = budget.min_concurrent
    if not _number(floor) or int(floor) != floor or floor < 0:
        raise RoutingError(f"{where}.min_concurrent: expected an integer >= 0")
    return budget


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _parse_batching(spec: Any, where: str) -> BatchingConfig:
    if spec is None:
        return BatchingConfig()
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: expected a mapping with enabled, max_batch, max_delay_ms")
    if extra := sorted(set(spec) - {"enabled", "max_batch", "max_delay_ms"}):
        raise RoutingError(f"{where}: unknown key(s) {extra}")
    enabled = spec.get("enabled", True)
    max_batch = spec.get("max_batch", BatchingConfig.max_batch)
    max_delay_ms = spec.get("max_delay_ms", BatchingConfig.max_delay_ms)
    if not isinstance(enabled, bool):
        raise RoutingError(f"{where}.enabled: true or false")
    if not _number(max_batch) or int(max_batch) != max_batch or not 1 <= max_batch <= 1024:
        raise RoutingError(f"{where}.max_batch: an integer from 1 to 1024")
    if not _number(max_delay_ms) or not 0 <= max_delay_ms <= 1000:
        raise RoutingError(f"{where}.max_delay_ms: a number of milliseconds from 0 to 1000")
    return BatchingConfig(enabled=enabled, max_batch=int(max_batch), max_delay_ms=float(max_delay_ms))


def _parse_shadow(spec: Any, where: str, known: set[str]) -> ShadowConfig:
    if spec is None:
        return ShadowConfig()
    if not isinstance(spec, dict):
        raise RoutingError(f"{where}: expected a mapping with 'percent' and optional 'backend'")
    percent = spec.get("percent", 0)
    backend = spec.get("backend")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise RoutingError(f"{where}.percent: a number from 0 to 100")
    if backend is not None and backend not in known:
        raise RoutingError(f"{where}.backend: unknown backend {backend!r}")
    return ShadowConfig(percent=float(percent), backend=backend)


class RoutingSource:
    """The current table: from a file (re-read when its content changes) or fixed defaults.

    A change is seen by the SHA-256 of the bytes, not the mtime: two writes within one timestamp
    tick, or a file caught half-written by an in-place editor and completed in the same tick, still
    differ. The file is read once per poll and exactly the bytes hashed are parsed. A broken new
    file is logged and ignored: the last good table stays in force.
    """

    def __init__(
        self,
        path: Path | None,
        default: RoutingTable,
        known_backends: Iterable[str],
        poll_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_reload: Callable[[str], None] | None = None,
    ) -> None:
        self._path = path
        self._known = set(known_backends)
        self._poll_s = poll_s
        self._clock = clock
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self._table = default
        self._digest: str | None = None
        self._next_check = 0.0
        if path is not None:
            raw = _read(path)
            self._table = RoutingTable.loads(raw, str(path), self._known)  # a bad file at start-up is fatal
            self._digest = hashlib.sha256(raw).hexdigest()

    @property
    def path(self) -> Path | None:
        return self._path

    def current(self) -> RoutingTable:
        if self._path is not None and self._clock() >= self._next_check:
            self.reload(force=False)
        return self._table

    def reload(self, force: bool = True) -> RoutingTable:
        """Re-read the file if it changed (or always when ``force``); raise RoutingError if forced and bad."""
        if self._path is None:
            return self._table
        with self._lock:
            self._next_check = self._clock() + self._poll_s
            try:
                raw = _read(self._path)
                digest = hashlib.sha256(raw).hexdigest()
                if not force and digest == self._digest:
                    return self._table
                self._table = RoutingTable.loads(raw, str(self._path), self._known)
                self._digest = digest
            except RoutingError as exc:
                log.error("routing file not reloaded, keeping the previous table: %s", exc)
                self._notify("error")
                if force:
                    raise RoutingError(str(exc)) from exc
                return self._table
            log.info("routing table reloaded from %s", self._path)
            self._notify("ok")
            return self._table

    def _notify(self, outcome: str) -> None:
        if self._on_reload is not None:
            self._on_reload(outcome)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RoutingError(f"{path}: {exc}") from exc


def default_table(model_names: Iterable[str], backends: Mapping[str, float]) -> RoutingTable:
    return RoutingTable(models={m: ModelRoute(name=m, backends=dict(backends)) for m in model_names})
