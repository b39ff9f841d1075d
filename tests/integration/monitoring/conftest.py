"""A monitored local stack: the TF Serving stand-in with two versions, the gateway with a 10 % canary and
a shadow, and the real Prometheus of ``python -m serving up`` scraping both every half second with the rules
of k8s/monitoring/rules.yml. Every process is stopped when the package's tests end, also after a failure."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporters.mnist import MnistData
from model_store import ModelStore
from model_store.manifest import VersionRecord
from serving.http import request_json
from serving.ports import free_port
from serving.process import stop_server
from serving.prometheus import launcher as prometheus
from serving.settings import ServingSettings
from serving.tfserving import launcher as tfserving
from tests.integration.gateway.conftest import RunningGateway, running_gateway
from tests.support import serving_settings

TIMEOUT = 10.0
ROUTING = """
models:
  mnist:
    backends: {tfserving-rest: 100, v2-rest: 0, embedded-pytorch: 0}
    versions: {1: 90, 2: 10}
    shadow: {percent: 100, backend: embedded-pytorch}
    failover: false
    batching: {enabled: true, max_batch: 8, max_delay_ms: 1}
"""
"""90/10 between versions 1 and 2; every request shadowed to the in-process PyTorch model; ``v2-rest`` points
at a closed port, so a request that picks it explicitly fails with a 5xx; micro-batching on (the dashboard
shows it)."""


@dataclass
class MonitoredStack:
    settings: ServingSettings
    gateway: RunningGateway
    prometheus_url: str
    images: np.ndarray
    warm_requests: int = 0
    """Sent before Prometheus started, so each series' first sample already holds them."""
    first_scrape_at: float = 0.0

    def send(self, count: int, backend: str | None = None) -> list[int]:
        """``count`` one-digit predictions through the gateway (4 at a time); their status codes."""
        return send(self.gateway.base, self.images, count, backend)

    def scraped_requests(self) -> float:
        """The gateway's request count as Prometheus scraped it last (-1 before the first scrape)."""
        result = self.query('sum(gateway_requests_total{model="mnist"})')
        return float(result[0]["value"][1]) if result else -1.0

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = request_json(
            f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}),
            timeout=TIMEOUT,
        )
        assert status == 200 and body["status"] == "success", (expr, status, body)
        return list(body["data"]["result"])

    def wait_for(self, what: str, check: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:.0f}s: {what}")
            time.sleep(0.25)


def send(base: str, images: np.ndarray, count: int, backend: str | None = None) -> list[int]:
    headers = {"X-Gateway-Backend": backend} if backend else {}

    def one(index: int) -> int:
        body = {"instances": [images[index % len(images)].tolist()]}
        url = f"{base}/v1/models/mnist:predict"
        return requests.post(url, json=body, headers=headers, timeout=TIMEOUT).status_code

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def _attempts_seen(base: str) -> set[tuple[str, str]]:
    """(backend, version) of every ``gateway_backend_attempts_total`` series the gateway has (a failed
    request's own series has version "": the version is known per attempt)."""
    text = requests.get(f"{base}/metrics", timeout=TIMEOUT).text
    return {
        (sample.labels["backend"], sample.labels["version"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_backend_attempts_total"
    }


def warm_up(base: str, images: np.ndarray) -> int:
    """Traffic until both versions have answered and failed once: every series the test reads exists (a
    counter's first sample in Prometheus is its zero point, so a series born later would lose requests)."""
    wanted = {(backend, version) for backend in ("tfserving-rest", "v2-rest") for version in ("1", "2")}
    sent = 0
    while not wanted <= _attempts_seen(base):
        assert sent < 400, f"the 90/10 split never reached both versions: {_attempts_seen(base)}"
        sent += len(send(base, images, 16)) + len(send(base, images, 4, backend="v2-rest"))
    return sent


def _publish_copy(store: ModelStore) -> int:
    """Version N+1 with the latest version's artifacts (a re-export, in effect)."""
    latest = store.latest_version()
    assert latest is not None
    source, record = store.version_dir(latest), store.record(latest)
    with store.draft() as draft:
        for item in source.iterdir():
            if item.name != "version.json":
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, draft.path / item.name)
        data = record.to_dict()
        data.update(version=draft.version, created_at=dt.datetime.now(dt.UTC).isoformat())
        store.publish(draft, VersionRecord.from_dict(data))
        return draft.version


@pytest.fixture(scope="package")
def monitored_stack(
    exported_store: ModelStore, mnist: MnistData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MonitoredStack]:
    if shutil.which("prometheus") is None:
        pytest.skip("the prometheus binary is not installed (Debian package `prometheus`)")
    folder = tmp_path_factory.mktemp("monitored")
    shutil.copytree(exported_store.root, folder / "store")
    store = ModelStore(folder / "store", exported_store.model_name)
    assert _publish_copy(store) == 2
    settings = serving_settings(
        store.root,
        folder / "run",
        versions="all",
        prometheus_scrape_interval_s=0.5,
        prometheus_evaluation_interval_s=0.5,
    )
    env = {
        "GATEWAY_TFSERVING_REST_URL": tfserving.rest_url(settings),
        "GATEWAY_V2_REST_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_MODEL_STORE": str(store.root),
        "GATEWAY_BREAKER_FAILURES": "0",  # no open circuit: every failing request fails the same way
        "GATEWAY_BREAKER_MIN_CALLS": "1000000",
    }
    with contextlib.ExitStack() as stack:
        stack.callback(stop_server, settings.run_dir, tfserving.NAME)
        tfserving.check_ports(settings)
        tfserving.wait_until_ready(settings, tfserving.start(settings), 120)
        gateway = stack.enter_context(running_gateway(folder, ROUTING, env))
        images = (mnist.test_images[:64] / 255.0).astype(np.float32)
        warm = warm_up(gateway.base, images)
        settings = replace(settings, prometheus_gateway=f"127.0.0.1:{gateway.port}")
        stack.callback(stop_server, settings.run_dir, prometheus.NAME)
        prometheus.check_ports(settings)
        prometheus.wait_until_ready(settings, prometheus.start(settings), 30)
        monitored = MonitoredStack(settings, gateway, prometheus.url(settings), images, warm)
        monitored.wait_for("the first scrape of the gateway", lambda: monitored.scraped_requests() == warm)
        monitored.first_scrape_at = time.time()
        yield monitored
