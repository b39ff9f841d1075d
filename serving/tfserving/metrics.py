"""A few honest counters for ``/monitoring/prometheus/metrics``, in Prometheus text format.

Requests by protocol, API and outcome, their latency as a histogram, and which versions are
loaded. Named ``tfserving_standin_*`` so they are never mistaken for TF Serving's own metrics.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence

PREFIX = "tfserving_standin"
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
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0


class Metrics:
    """Thread-safe request counters and latency histograms."""

    def __init__(self, buckets: Sequence[float] = BUCKETS_S) -> None:
        self._buckets = tuple(buckets)
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], _Histogram] = {}

    def observe(self, protocol: str, api: str, outcome: str, seconds: float) -> None:
        """Count one finished request; ``outcome`` is the HTTP status or the gRPC code name."""
        with self._lock:
            self._requests[(protocol, api, outcome)] += 1
            histogram = self._latency.setdefault((protocol, api), _Histogram(self._buckets))
            histogram.counts[bisect.bisect_left(self._buckets, seconds)] += 1
            histogram.total += seconds

    def render(self, loaded: dict[str, list[int]]) -> str:
        """The exposition text; ``loaded`` maps model name to its loaded versions."""
        lines = [
            f"# HELP {PREFIX}_requests_total Requests answered, by protocol, API and outcome.",
            f"# TYPE {PREFIX}_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((key, list(h.counts), h.total) for key, h in self._latency.items())
        for (protocol, api, outcome), count in requests:
            labels = _labels((("protocol", protocol), ("api", api), ("outcome", outcome)))
            lines.append(f"{PREFIX}_requests_total{labels} {count}")
        name = f"{PREFIX}_request_duration_seconds"
        lines += [f"# HELP {name} Time from request parsed to answer ready.", f"# TYPE {name} histogram"]
        for (protocol, api), counts, total in latency:
            base = (("protocol", protocol), ("api", api))
            running = 0
            for bound, count in zip((*self._buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f"{name}_bucket{_labels((*base, ('le', le)))} {running}")
            lines.append(f"{name}_sum{_labels(base)} {total!r}")
            lines.append(f"{name}_count{_labels(base)} {running}")
        gauge = f"{PREFIX}_model_version_loaded"
        lines += [f"# HELP {gauge} 1 for each model version loaded and serving.", f"# TYPE {gauge} gauge"]
        for model, versions in sorted(loaded.items()):
            for version in versions:
                lines.append(f"{gauge}{_labels((('model', model), ('version', str(version))))} 1")
        return "\n".join(lines) + "\n"
