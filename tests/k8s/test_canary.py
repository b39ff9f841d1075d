"""k8s/tools/canary.py: it reads the metric names gateway/metrics.py really exports, and waits for pods."""

from __future__ import annotations

import base64
import hashlib
import json
from argparse import Namespace
from collections.abc import Callable
from types import ModuleType

import pytest

from gateway.metrics import Metrics
from tests.k8s.conftest import K8S, load_script


@pytest.fixture(scope="module")
def watch() -> ModuleType:
    return load_script(K8S / "tools" / "canary.py")


def traffic(metrics: Metrics, version: str, count: int, status: int = 200, seconds: float = 0.004) -> None:
    for _ in range(count):
        backend = "tfserving-rest"
        metrics.request("predict", "mnist", backend, version, status, seconds, seconds / 2)
        metrics.attempt("mnist", backend, version, seconds / 2, status if status != 503 else 502)


def test_window_summary_from_real_gateway_metrics(watch: ModuleType) -> None:
    metrics = Metrics()
    traffic(metrics, "1", 50)
    before = watch.parse(metrics.render().decode())
    traffic(metrics, "1", 90)
    traffic(metrics, "2", 9)
    traffic(metrics, "2", 1, status=503)
    metrics.shadow("mnist", "tfserving-rest", "torchserve-rest", "ok", 0.002, agreed=98, total=100)
    after = watch.parse(metrics.render().decode())

    report = watch.summarize(watch.delta(before, after), "mnist")
    assert report.requests == 100
    assert report.error_rate == pytest.approx(0.01)
    assert report.failure_rate("2") == pytest.approx(0.1)
    assert report.failure_rate("1") == 0
    assert report.agreement == pytest.approx(0.98)
    assert report.p99_s is not None and 0.0025 < report.p99_s <= 0.005
    assert set(report.p99_by_backend_s) == {"tfserving-rest"}

    limits = Namespace(max_error_rate=0.05, max_p99=0.25, min_agreement=0.99)
    problems = watch.verdict(report, limits)
    assert any("version 2" in p for p in problems) and any("agreement" in p for p in problems)
    assert "version 2: 10 upstream attempts" in watch.render(report, 60)


def test_restarted_pod_counts_from_zero(watch: ModuleType) -> None:
    key = ("gateway_requests_total", (("model", "mnist"), ("status", "200")))
    assert watch.delta({key: 500.0}, {key: 20.0}) == {key: 20.0}
    assert watch.delta({key: 500.0}, {key: 520.0}) == {key: 20.0}


def test_quantile_matches_promql(watch: ModuleType) -> None:
    buckets = {0.001: 0.0, 0.005: 50.0, 0.01: 100.0, float("inf"): 100.0}
    assert watch.quantile(0.5, buckets) == pytest.approx(0.005)
    assert watch.quantile(0.99, buckets) == pytest.approx(0.0099)
    assert watch.quantile(0.99, {0.1: 0.0, float("inf"): 0.0}) is None


def test_reads_every_gateway_pod(watch: ModuleType) -> None:
    metrics = Metrics()
    traffic(metrics, "1", 3)
    text = metrics.render().decode()
    calls: list[list[str]] = []

    def run(args: list[str]) -> str:
        calls.append(list(args))
        return "gateway-a gateway-b" if args[0] == "get" else text

    pods = watch.gateway_pods(run, "app.kubernetes.io/name=gateway")
    snapshots = watch.scrape(run, pods)
    assert set(snapshots) == {"gateway-a", "gateway-b"}
    assert calls[1][:4] == ["exec", "gateway-a", "-c", "gateway"]


def _cluster(
    watch: ModuleType, routing: str, key: bytes, pod_routing: str, ready: bool
) -> Callable[..., str]:
    def run(args: list[str]) -> str:
        if args[:2] == ["get", "configmap"]:
            return routing
        if args[:2] == ["get", "secret"]:
            return base64.b64encode(key).decode()
        if args[:2] == ["get", "pods"]:
            return "gateway-a"
        backends = [{"name": "tfserving-rest", "ready": True}, {"name": "torchserve-rest", "ready": ready}]
        return json.dumps(
            {
                "routing": hashlib.sha256(pod_routing.encode().rstrip()).hexdigest(),
                "key": hashlib.sha256(key.rstrip()).hexdigest(),
                "status": 200 if ready else 503,
                "readyz": {"models": {"mnist": {"backends": backends}}},
            }
        )

    return run


def _wait_args() -> Namespace:
    return Namespace(
        timeout=0.0,
        poll=0.0,
        routing_map="gateway-routing",
        routing_file="/etc/gateway/routing/routing.yaml",
        secret="torchserve-inference-key",
        key_file="/var/run/secrets/torchserve/key_file.json",
        selector="app.kubernetes.io/name=gateway",
    )


def test_wait_until_pods_see_the_current_routing_and_key(watch: ModuleType) -> None:
    key = b'{"inference": {"key": "k"}}\n'
    assert watch.wait(_cluster(watch, "models: {}\n", key, "models: {}", ready=True), _wait_args()) == 0
    assert watch.wait(_cluster(watch, "models: {}\n", key, "models: {old}", ready=True), _wait_args()) == 1
    assert watch.wait(_cluster(watch, "models: {}\n", key, "models: {}", ready=False), _wait_args()) == 1


def test_query_reads_the_recorded_series(watch: ModuleType) -> None:
    """``query``: the recorded series per model and version, NaN (no traffic) read as n/a, thresholds."""
    series = {
        'model:gateway_requests:rate5m{model="mnist"}': [({"model": "mnist"}, 10.0)],
        'model:gateway_request_errors:ratio_rate5m{model="mnist"}': [({"model": "mnist"}, 0.02)],
        'model:gateway_request_duration_seconds:p99_5m{model="mnist"}': [({"model": "mnist"}, 0.3)],
        'backend:gateway_request_duration_seconds:p99_5m{model="mnist"}': [
            ({"backend": "tfserving-rest"}, 0.3),
            ({"backend": "torchserve-rest"}, float("nan")),
        ],
        'version:gateway_requests:rate5m{model="mnist"}': [({"version": "1"}, 9.0), ({"version": "2"}, 1.0)],
        'version:gateway_request_errors:ratio_rate5m{model="mnist"}': [({"version": "2"}, 0.2)],
        'version:gateway_backend_attempt_failures:ratio_rate5m{model="mnist"}': [({"version": "1"}, 0.0)],
        'model:gateway_shadow_agreement:ratio_rate30m{model="mnist"}': [
            ({"primary": "tfserving-rest", "shadow": "torchserve-rest"}, 0.97)
        ],
    }
    asked: list[str] = []

    def query(expr: str) -> list[tuple[dict[str, str], float]]:
        asked.append(expr)
        return series.get(expr, [])

    report = watch.recorded(query, "mnist")
    assert set(asked) == set(series)
    assert report.versions["2"].share == pytest.approx(0.1) and report.versions["2"].error_ratio == 0.2
    assert report.versions["1"].failure_ratio == 0.0 and report.p99_by_backend_s["torchserve-rest"] is None
    problems = watch.recorded_verdict(
        report, Namespace(max_error_rate=0.01, max_p99=0.25, min_agreement=0.99)
    )
    assert len(problems) == 4  # 5xx overall, version 2's 5xx, p99, agreement
    text = watch.render_recorded(report)
    assert "version 2: 10.00% of requests" in text and "p99 via torchserve-rest: n/a" in text
    with pytest.raises(ValueError):
        watch.recorded(query, 'mnist"} or vector(1')
