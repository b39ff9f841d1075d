"""The stand-in's metrics: TF Serving's own names and shapes where it does the same thing."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.tfserving.metrics import LATENCY_BUCKETS_US, Metrics, status_name


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_official_names_count_predicts_and_time_the_successful_ones() -> None:
    metrics = Metrics("mnist")
    metrics.observe("rest", "predict", "200", 0.002)
    metrics.observe("grpc", "predict", "OK", 0.001)
    metrics.observe("rest", "predict", "400", 0.0005)
    metrics.observe("rest", "metadata", "200", 0.0001)  # not a predict: stand-in series only
    text = metrics.render({"mnist": [1, 2]})
    samples = _samples(text)
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ":tensorflow:serving:request_count_total" not in text  # as the official server exports it
    # (prometheus_client's parser would rename these samples `..._total`: read the lines as Prometheus does)
    assert ':tensorflow:serving:request_count{model_name="mnist",status="OK"} 2.0' in text.splitlines()
    assert (
        ':tensorflow:serving:request_count{model_name="mnist",status="INVALID_ARGUMENT"} 1.0'
        in text.splitlines()
    )
    latency = ":tensorflow:serving:request_latency"
    rest = (("API", "Predict"), ("entrypoint", "REST"), ("model_name", "mnist"))
    assert samples[(f"{latency}_count", rest)] == 1  # the 400 is not timed
    assert samples[(f"{latency}_sum", rest)] == pytest.approx(2000.0)  # microseconds
    grpc = (("API", "Predict"), ("entrypoint", "GRPC"), ("model_name", "mnist"))
    assert samples[(f"{latency}_count", grpc)] == 1
    assert samples[
        ("tfserving_standin_requests_total", (("api", "metadata"), ("outcome", "200"), ("protocol", "rest")))
    ]
    loaded = "tfserving_standin_model_version_loaded"
    assert samples[(loaded, (("model", "mnist"), ("version", "2")))] == 1
    assert (loaded, (("model", "mnist"), ("version", "2"))) not in _samples(metrics.render({"mnist": [1]}))


def test_buckets_and_status_names_follow_tf_serving() -> None:
    assert LATENCY_BUCKETS_US[0] == 10 and len(LATENCY_BUCKETS_US) == 33
    assert LATENCY_BUCKETS_US[1] == pytest.approx(18.0)
    assert [status_name(code) for code in ("200", "404", "503", "999", "NOT_FOUND")] == [
        "OK",
        "NOT_FOUND",
        "UNAVAILABLE",
        "UNKNOWN",
        "NOT_FOUND",
    ]
