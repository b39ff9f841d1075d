"""The gateway's data plane, framework-free: the blueprint calls these methods and renders the results."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from gateway.backends import Backend, BackendPool
from gateway.breaker import BreakerConfig
from gateway.codecs.json_body import Limits
from gateway.errors import NotFound, OverCapacity, Unauthorized
from gateway.metrics import Metrics
from gateway.registry import BACKENDS
from gateway.router import HealthCache, Routed, Router, Selection
from gateway.routing import RoutingSource, RoutingTable, default_table
from gateway.settings import Settings
from gateway.tracing import Tracing, exporter_from_env

__all__ = ["BackendReport", "Gateway", "bearer_token", "server_version"]

log = logging.getLogger(__name__)
# Without a routing file: the in-process backends, which need no server.
DEFAULT_BACKENDS = {entry.name: 1.0 for entry in BACKENDS if entry.in_process}


def server_version() -> str:
    """The gateway's package version (server metadata of the V2 APIs)."""
    try:
        return metadata.version("mnist-serving-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


@dataclass(frozen=True)
class BackendReport:
    name: str
    framework: str
    ready: bool
    versions: list[int]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "framework": self.framework,
            "ready": self.ready,
            "versions": self.versions,
            **({"detail": self.detail} if self.detail else {}),
        }


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` value, or ""."""
    header = authorization or ""
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


class Gateway:
    """One worker's routing source, backends, router and metrics, wired together."""

    def __init__(
        self,
        settings: Settings,
        backends: Mapping[str, Backend] | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tracing = tracing or Tracing(exporter_from_env())
        self.pool = BackendPool(settings, backends)
        defaults = {name: 1.0 for name in backends} if backends is not None else DEFAULT_BACKENDS
        self.routing = RoutingSource(
            settings.routing_file,
            default_table([settings.default_model], defaults),
            self.pool.names(),
            poll_s=settings.routing_poll_s,
            on_reload=self.metrics.routing_reload,
        )
        self.router = Router(
            self.routing.current,
            self.pool,
            attempt_timeout_s=settings.attempt_timeout_s,
            health=HealthCache(settings.health_ttl_s),
            observer=self.metrics,
            tracing=self.tracing,
            shadow_max_inflight=settings.shadow_max_inflight,
            breaker=BreakerConfig(
                enabled=settings.breaker_failures > 0,
                failures=settings.breaker_failures,
                error_ratio=settings.breaker_error_ratio,
                min_calls=settings.breaker_min_calls,
                window_s=settings.breaker_window_s,
                open_s=settings.breaker_open_s,
            ),
        )
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self.metrics.track_in_flight(lambda: self._in_flight)
        self.limits = Limits(settings.max_instances, settings.max_json_depth, settings.max_image_side)

    # -- requests -----------------------------------------------------------------------

    def authenticate(self, api_key: str | None, authorization: str | None) -> None:
        """Unauthorized unless API keys are off or one is offered (``X-API-Key`` or ``Bearer``);
        the same check for HTTP headers and gRPC metadata. Constant-time comparison."""
        keys = self.settings.api_keys
        if not keys:
            return
        offered = (api_key or bearer_token(authorization)).encode()
        if not any(hmac.compare_digest(offered, key.encode()) for key in keys):
            raise Unauthorized("missing or wrong API key")

    def deadline(self) -> float:
        return time.monotonic() + self.settings.deadline_s

    def predict(self, selection: Selection, images: np.ndarray) -> Routed:
        with self._in_flight_lock:
            if self._in_flight >= self.settings.max_inflight:
                raise OverCapacity(
                    f"more than {self.settings.max_inflight} requests in flight; retry shortly"
                )
            self._in_flight += 1
        try:
            return self.router.predict(selection, images)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def table(self) -> RoutingTable:
        return self.routing.current()

    def is_routed(self, model: str) -> bool:
        return model in self.table().models

    def check_version(self, model: str, version: int | None) -> None:
        """NotFound for a version the routing table does not serve (where it lists versions; else the
        backend decides). Metadata and readiness reach no backend: without this they would answer for
        any version."""
        if version is None:
            return
        route = self.table().models[model]
        served = {*route.versions, *route.labels.values()}
        if served and version not in served:
            raise NotFound(f"model {model!r} has no version {version} in the routing table")

    # -- status -------------------------------------------------------------------------

    def model_report(self, model: str) -> list[BackendReport]:
        route = self.table().models.get(model)
        if route is None:
            raise NotFound(f"unknown model {model!r}")
        names = list(route.backends)
        with ThreadPoolExecutor(max_workers=max(len(names), 1)) as probes:
            return list(probes.map(lambda name: self._probe(model, name), names))

    def _probe(self, model: str, name: str) -> BackendReport:
        try:
            status = self.pool.get(name).status(model, self.settings.health_timeout_s)
        except Exception as exc:  # a probe must never fail the status page
            log.warning("status probe of %s failed: %s", name, exc)
            return BackendReport(name, self.pool.framework(name), False, [], "probe failed")
        self.router.health.mark(name, status.ready)
        return BackendReport(name, self.pool.framework(name), status.ready, status.versions, status.detail)

    def readiness(self) -> dict[str, list[BackendReport]]:
        return {model: self.model_report(model) for model in self.table().models}

    # -- life cycle ---------------------------------------------------------------------

    def warm_up(self) -> None:
        """Build every routed backend and load embedded models now; failures are logged, not fatal."""
        for model, route in self.table().models.items():
            for name in route.backends:
                try:
                    self.pool.get(name).warm_up(model)
                except Exception as exc:
                    log.warning("warm-up of %s for %s failed: %s", name, model, exc)

    def close(self) -> None:
        self.router.close()
        self.pool.close()
        self.tracing.close()
        self.metrics.close()  # after the router: the drained batches' requests are counted too
