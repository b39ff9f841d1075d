"""The stand-in's ``/monitoring/prometheus/metrics``, exposed with prometheus_client.

Two sets of series:

- TF Serving's own names where the stand-in does the same thing, so dashboards and alerts written for
  the official server read the stand-in too: ``:tensorflow:serving:request_count`` (predict calls by
  ``model_name`` and gRPC status name, a counter without a ``_total`` suffix, as the official server
  exports it) and ``:tensorflow:serving:request_latency`` (successful predict calls, microseconds, by
  ``model_name``, ``API`` and ``entrypoint`` REST or GRPC, on the official exponential buckets).
- ``tfserving_standin_*`` for what only the stand-in reports: every request by protocol, API and outcome,
  its latency in seconds, and the loaded versions. They are never mistaken for TF Serving's own.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

PREFIX = "tfserving_standin"
OFFICIAL_PREFIX = ":tensorflow:serving"
BUCKETS_S: tuple[float, ...] = (
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
LATENCY_BUCKETS_US: tuple[float, ...] = tuple(10 * 1.8**index for index in range(33))
"""TF Serving's request latency buckets: scale 10 us, growth 1.8, 33 buckets (up to about 20 minutes)."""
PREDICT_APIS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
"""The stand-in's API names -> the ``API`` label TF Serving uses."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HTTP_TO_GRPC = {
    "200": "OK",
    "400": "INVALID_ARGUMENT",
    "404": "NOT_FOUND",
    "408": "DEADLINE_EXCEEDED",
    "413": "RESOURCE_EXHAUSTED",
    "429": "RESOURCE_EXHAUSTED",
    "500": "INTERNAL",
    "501": "UNIMPLEMENTED",
    "503": "UNAVAILABLE",
    "504": "DEADLINE_EXCEEDED",
}


def status_name(outcome: str) -> str:
    """The gRPC status name of an outcome (an HTTP status over REST, the code name over gRPC)."""
    return _HTTP_TO_GRPC.get(outcome, "UNKNOWN") if outcome.isdigit() else outcome


class _RequestCount(Collector):
    """``:tensorflow:serving:request_count``: exported as TF Serving does, without ``_total``."""

    name = f"{OFFICIAL_PREFIX}:request_count"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], float] = defaultdict(float)

    def inc(self, model_name: str, status: str) -> None:
        with self._lock:
            self._counts[(model_name, status)] += 1

    def collect(self) -> Iterable[Metric]:
        family = Metric(self.name, "The total number of requests.", "counter")
        with self._lock:
            counts = sorted(self._counts.items())
        for (model_name, status), value in counts:
            family.add_sample(self.name, {"model_name": model_name, "status": status}, value)
        yield family


class Metrics:
    """Thread-safe request metrics of one stand-in serving ``model_name``."""

    def __init__(self, model_name: str = "", buckets: Iterable[float] = BUCKETS_S) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            f"{PREFIX}_requests",
            "Requests answered, by protocol, API and outcome.",
            ["protocol", "api", "outcome"],
            registry=self.registry,
        )
        self._duration = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from request parsed to answer ready.",
            ["protocol", "api"],
            buckets=tuple(buckets),
            registry=self.registry,
        )
        self._loaded = Gauge(
            f"{PREFIX}_model_version_loaded",
            "1 for each model version loaded and serving.",
            ["model", "version"],
            registry=self.registry,
        )
        self._request_count = _RequestCount()
        self.registry.register(self._request_count)
        self._request_latency = Histogram(
            f"{OFFICIAL_PREFIX}:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=LATENCY_BUCKETS_US,
            registry=self.registry,
        )
        self._loaded_lock = threading.Lock()

    def observe(self, protocol: str, api: str, outcome: str, seconds: float) -> None:
        """Count one finished request; ``outcome`` is the HTTP status or the gRPC code name."""
        self._requests.labels(protocol, api, outcome).inc()
        self._duration.labels(protocol, api).observe(seconds)
        official_api = PREDICT_APIS.get(api)
        if official_api is None:
            return
        status = status_name(outcome)
        self._request_count.inc(self.model_name, status)
        if status == "OK":  # TF Serving records latency for successful calls only
            entrypoint = "GRPC" if protocol == "grpc" else "REST"
            self._request_latency.labels(self.model_name, official_api, entrypoint).observe(seconds * 1e6)

    def render(self, loaded: dict[str, list[int]]) -> str:
        """The exposition text; ``loaded`` maps model name to its loaded versions."""
        with self._loaded_lock:
            self._loaded.clear()
            for model, versions in loaded.items():
                for version in versions:
                    self._loaded.labels(model, str(version)).set(1)
            text = generate_latest(self.registry).decode()
        # prometheus_client names a counter's HELP and TYPE lines with `_total`; TF Serving's has none.
        name = _RequestCount.name
        for line in ("# HELP", "# TYPE"):
            text = text.replace(f"{line} {name}_total ", f"{line} {name} ")
        return text
