"""Batched metric writes leave the same series as prometheus_client's own inc/observe, and get written."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.metric_writer import BatchedWriter, MetricWriter
from gateway.metrics import BUCKETS

# Bucket bounds themselves, values between them, zero, past the last bound, and a NaN.
VALUES = [0.0, 0.0001, 0.00011, 0.003, 0.005, 0.0051, 2.5, 9.99, 10.0, 11.0, 1e6, float("nan"), 0.2]


def _family(writer: MetricWriter) -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("calls", "Calls", ["backend"], registry=registry)
    histogram = Histogram("seconds", "Seconds", ["backend"], buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The samples, without the creation timestamps (which differ between two registries)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def _apply(writer: MetricWriter, counter: Counter, histogram: Histogram) -> None:
    for index, value in enumerate(VALUES):
        backend = "a" if index % 3 else "b"
        writer.inc(counter.labels(backend))
        writer.inc(counter.labels(backend), 2.5)
        writer.observe(histogram.labels(backend), value)


def test_a_batch_leaves_what_observe_leaves() -> None:
    immediate = MetricWriter()
    registry, counter, histogram = _family(immediate)
    _apply(immediate, counter, histogram)

    batched = BatchedWriter(interval_s=3600)  # only the explicit flush writes
    batched_registry, batched_counter, batched_histogram = _family(batched)
    _apply(batched, batched_counter, batched_histogram)
    assert _exposition(batched_registry) != _exposition(registry)  # queued, not written yet
    batched.flush()
    assert _exposition(batched_registry) == _exposition(registry)
    batched.close()


def test_the_writer_thread_writes_without_being_asked_and_stops_on_close() -> None:
    sampled: list[int] = []
    writer = BatchedWriter(on_flush=lambda: sampled.append(1), interval_s=0.01)
    registry, counter, histogram = _family(writer)
    writer.inc(counter.labels("a"), 3)
    writer.observe(histogram.labels("a"), 0.002)
    deadline = time.monotonic() + 5
    while registry.get_sample_value("calls_total", {"backend": "a"}) != 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.get_sample_value("calls_total", {"backend": "a"}) == 3
    assert registry.get_sample_value("seconds_count", {"backend": "a"}) == 1
    assert sampled, "on_flush did not run with the writes"
    thread = writer._thread
    writer.inc(counter.labels("a"))
    writer.close()
    assert thread is not None and not thread.is_alive()
    assert registry.get_sample_value("calls_total", {"backend": "a"}) == 4  # the last update, by close


def test_the_immediate_writer_writes_at_once() -> None:
    writer = MetricWriter()
    registry, counter, histogram = _family(writer)
    writer.inc(counter.labels("a"))
    writer.observe(histogram.labels("a"), 0.3)
    assert registry.get_sample_value("calls_total", {"backend": "a"}) == 1
    assert registry.get_sample_value("seconds_bucket", {"backend": "a", "le": "0.5"}) == 1
