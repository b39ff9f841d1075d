"""Prometheus metrics, correct with several worker processes (granian or gunicorn).

Under ``python -m gateway`` the launcher sets ``PROMETHEUS_MULTIPROC_DIR`` before any worker imports
prometheus_client, so every worker writes its samples to files there and ``/metrics`` (served by any
one worker) aggregates all of them. Without that variable (tests, one process) the app's own registry
is rendered. Each :class:`Metrics` has its own registry, so several apps can live in one process.

Gateway time is separated from backend time: ``gateway_request_duration_seconds`` is the whole
request, ``gateway_backend_duration_seconds`` each upstream attempt, ``gateway_overhead_seconds``
the difference. The shadow agreement rate is exported both as counters (for PromQL) and as the
derived ``gateway_shadow_agreement_ratio`` computed at scrape time.

The updates every request makes go through a :mod:`gateway.metric_writer`: with several workers they
are queued and written in batches (a scrape sees another worker's requests up to 0.1 s late).
``gateway_in_flight_requests`` is sampled from the worker's own count whenever the queue is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gateway.breaker import State
from gateway.metric_writer import BatchedWriter, MetricWriter

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "mark_process_dead", "multiprocess_dir"]

BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_process_dead(pid: int) -> None:
    """Gunicorn ``child_exit`` hook: drop a dead worker's live-gauge files."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


K = TypeVar("K")
V = TypeVar("V")


def _cached(cache: dict[K, V], key: K, build: Callable[[], V]) -> V:
    """``cache[key]``, built on first use. Label lookups cost more than the updates, so the hot paths
    keep their labelled children; a lost race only builds the same child twice (prometheus_client
    returns the existing one)."""
    value = cache.get(key)
    if value is None:
        value = cache[key] = build()
    return value


class _AgreementRatio(Collector):
    """``agree / (agree + disagree)`` per (model, primary, shadow), from the shadow item counters."""

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        counts: dict[tuple[str, str, str], dict[str, float]] = {}
        for family in self._source.collect():
            if family.name != "gateway_shadow_items":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["model"], sample.labels["primary"], sample.labels["shadow"])
                    outcome = counts.setdefault(key, {})
                    outcome[sample.labels["outcome"]] = (
                        outcome.get(sample.labels["outcome"], 0) + sample.value
                    )
        gauge = GaugeMetricFamily(
            "gateway_shadow_agreement_ratio",
            "Share of shadowed items whose predicted digit matched the primary backend's",
            labels=["model", "primary", "shadow"],
        )
        for key, outcome in sorted(counts.items()):
            total = outcome.get("agree", 0) + outcome.get("disagree", 0)
            if total:
                gauge.add_metric(list(key), outcome.get("agree", 0) / total)
        yield gauge


class _Registry(Collector):
    """Adapter so the derived gauge can read a registry's families."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self._registry.collect())


class Metrics:
    """The gateway's metrics; also the router's observer (see ``gateway.router.RouterObserver``)."""

    def __init__(self) -> None:
        self._in_flight_source: Callable[[], int] | None = None
        self.writer: MetricWriter = (
            BatchedWriter(self._sample_in_flight)
            if multiprocess_dir()
            else MetricWriter(self._sample_in_flight)
        )
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Client requests",
            ["endpoint", "model", "backend", "version", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Whole request time in the gateway, backend time included",
            ["endpoint", "model", "backend"],
            buckets=BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Gateway time minus backend time (decoding, routing, encoding)",
            ["endpoint", "model", "backend"],
            buckets=BUCKETS,
            registry=r,
        )
        self.backend_duration = Histogram(
            "gateway_backend_duration_seconds",
            "One upstream attempt, as seen by the gateway",
            ["model", "backend", "status"],
            buckets=BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "gateway_backend_attempts",
            "Upstream attempts",
            ["model", "backend", "version", "status"],
            registry=r,
        )
        self.failovers = Counter(
            "gateway_failovers",
            "Failovers to another backend",
            ["model", "from_backend", "to_backend"],
            registry=r,
        )
        self.budget = Counter(
            "gateway_retry_budget_exhausted", "Failovers refused by the retry budget", ["model"], registry=r
        )
        self.shadow_requests = Counter(
            "gateway_shadow_requests",
            "Shadow calls by outcome",
            ["model", "primary", "shadow", "outcome"],
            registry=r,
        )
        self.shadow_items = Counter(
            "gateway_shadow_items",
            "Shadowed images by agreement with the primary's digit",
            ["model", "primary", "shadow", "outcome"],
            registry=r,
        )
        self.shadow_duration = Histogram(
            "gateway_shadow_duration_seconds",
            "Shadow call latency",
            ["model", "shadow"],
            buckets=BUCKETS,
            registry=r,
        )
        self.reloads = Counter("gateway_routing_reloads", "Routing file reloads", ["outcome"], registry=r)
        self.batch_size = Histogram(
            "gateway_batch_size",
            "Images per backend call made by the gateway's micro-batcher",
            ["model", "backend"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.batch_requests = Histogram(
            "gateway_batch_requests",
            "Client requests merged into one backend call by the micro-batcher",
            ["model", "backend"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.batch_queue_delay = Histogram(
            "gateway_batch_queue_delay_seconds",
            "Time a request waited in the micro-batcher before its backend call started",
            ["model", "backend"],
            buckets=BUCKETS,
            registry=r,
        )
        self.circuit_state = Gauge(
            "gateway_circuit_state",
            "Backend circuit breaker: 0 closed, 1 half-open, 2 open (the worst worker's)",
            ["backend"],
            multiprocess_mode="max",
            registry=r,
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests",
            "Predictions this worker is serving now (all workers of a pod summed: the autoscaler's signal; "
            "sampled every 0.1 s)",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.circuit_changes = Counter(
            "gateway_circuit_changes", "Circuit breaker state changes", ["backend", "state"], registry=r
        )
        self.circuit_rejections = Counter(
            "gateway_circuit_rejected",
            "Calls failed fast, without an upstream call, because the backend's circuit was open",
            ["backend"],
            registry=r,
        )
        # Labelled children of the hot paths (see _cached).
        self._request_children: dict[tuple[str, str, str, str, int], tuple[Any, Any, Any]] = {}
        self._attempt_children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._batcher_children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    # -- request level ------------------------------------------------------------------

    def request(
        self,
        endpoint: str,
        model: str,
        backend: str,
        version: str,
        status: int,
        total_s: float,
        backend_s: float,
    ) -> None:
        requests, duration, overhead = _cached(
            self._request_children,
            (endpoint, model, backend, version, status),
            lambda: (
                self.requests.labels(endpoint, model, backend, version, str(status)),
                self.duration.labels(endpoint, model, backend),
                self.overhead.labels(endpoint, model, backend),
            ),
        )
        writer = self.writer
        writer.inc(requests)
        writer.observe(duration, total_s)
        if backend_s > 0:
            writer.observe(overhead, max(total_s - backend_s, 0.0))

    def batch(self, model: str, backend: str, images: int, requests: int) -> None:
        size, merged, _ = self._batch_children(model, backend)
        self.writer.observe(size, images)
        self.writer.observe(merged, requests)

    def queue_delay(self, model: str, backend: str, seconds: float) -> None:
        self.writer.observe(self._batch_children(model, backend)[2], seconds)

    def lone(self, model: str, backend: str, images: int) -> None:
        """A batch of one request that did not wait: the three observations of :meth:`batch` and
        :meth:`queue_delay` with one lookup (this runs for every request at low load)."""
        children = self._batcher_children.get((model, backend)) or self._batch_children(model, backend)
        size, merged, delay = children
        writer = self.writer
        writer.observe(size, images)
        writer.observe(merged, 1)
        writer.observe(delay, 0.0)

    def _batch_children(self, model: str, backend: str) -> tuple[Any, Any, Any]:
        return _cached(
            self._batcher_children,
            (model, backend),
            lambda: (
                self.batch_size.labels(model, backend),
                self.batch_requests.labels(model, backend),
                self.batch_queue_delay.labels(model, backend),
            ),
        )

    def routing_reload(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    # -- RouterObserver -----------------------------------------------------------------

    def attempt(self, model: str, backend: str, version: str, seconds: float, status: int) -> None:
        attempts, duration = _cached(
            self._attempt_children,
            (model, backend, version, status),
            lambda: (
                self.attempts.labels(model, backend, version, str(status)),
                self.backend_duration.labels(model, backend, str(status)),
            ),
        )
        self.writer.inc(attempts)
        self.writer.observe(duration, seconds)

    def circuit(self, backend: str, state: State) -> None:
        self.circuit_state.labels(backend).set(state.level)
        self.circuit_changes.labels(backend, state.value).inc()

    def circuit_rejected(self, backend: str) -> None:
        self.circuit_rejections.labels(backend).inc()

    def failover(self, model: str, from_backend: str, to_backend: str) -> None:
        self.failovers.labels(model, from_backend, to_backend).inc()

    def budget_exhausted(self, model: str) -> None:
        self.budget.labels(model).inc()

    def shadow(
        self, model: str, primary: str, shadow: str, outcome: str, seconds: float, agreed: int, total: int
    ) -> None:
        self.shadow_requests.labels(model, primary, shadow, outcome).inc()
        if outcome == "ok":
            self.shadow_duration.labels(model, shadow).observe(seconds)
            self.shadow_items.labels(model, primary, shadow, "agree").inc(agreed)
            self.shadow_items.labels(model, primary, shadow, "disagree").inc(total - agreed)

    # -- in flight, flushing ------------------------------------------------------------

    def track_in_flight(self, source: Callable[[], int]) -> None:
        """``gateway_in_flight_requests`` reads ``source`` (the worker's count) when updates are written."""
        self._in_flight_source = source

    def _sample_in_flight(self) -> None:
        if self._in_flight_source is not None:
            self.in_flight.set(self._in_flight_source())

    def close(self) -> None:
        """Write what is queued and stop the writer's thread (the worker is stopping)."""
        self.writer.close()

    # -- exposition ---------------------------------------------------------------------

    def render(self) -> bytes:
        self.writer.flush()  # this worker's own updates, and its in-flight count, as of now
        path = multiprocess_dir()
        if path is None:
            source: Collector = _Registry(self.registry)
        else:
            source = MultiProcessCollector(None, path=path)
        output = CollectorRegistry()
        output.register(source)
        output.register(_AgreementRatio(source))
        return generate_latest(output)
