"""The whole local stack, as `make serve` + `make gateway` run it: real TorchServe, TF Serving
(the official binary if installed, else the project's named stand-in) and the gateway under
granian. Shadow agreement, failover while traffic flows, readiness as servers stop."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from exporters.mnist import MnistData
from model_store import ModelStore
from serving.ports import free_port
from serving.process import stop_server
from serving.settings import ServingSettings
from serving.tfserving import launcher as tfserving
from serving.torchserve import launcher as torchserve
from tests.support import serving_settings

pytestmark = pytest.mark.integration
TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServingSettings, str]]:
    """Both servers and a 2-worker gateway (granian) routing 50/50 with failover and 100% shadow."""
    work = tmp_path_factory.mktemp("stack")
    settings = serving_settings(exported_store.root, work / "run")
    routing = work / "routing.yaml"
    routing.write_text(
        "models:\n  mnist:\n    backends: {tfserving-rest: 50, torchserve-rest: 50}\n"
        "    shadow: {percent: 100}\n    failover: true\n"
    )
    port = free_port()
    gateway_env = {
        **os.environ,
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_GRPC_BIND": "",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_TFSERVING_REST_URL": tfserving.rest_url(settings),
        "GATEWAY_TORCHSERVE_REST_URL": torchserve.endpoints(settings).inference,
        "GATEWAY_TORCHSERVE_MANAGEMENT_URL": torchserve.endpoints(settings).management,
        "GATEWAY_TORCHSERVE_KEY_FILE": str(settings.key_file),
        "GATEWAY_METRICS_DIR": str(work / "metrics"),
        "GATEWAY_LOG_LEVEL": "warning",
    }
    gateway: subprocess.Popen[bytes] | None = None
    try:
        records = [launcher.start(settings) for launcher in (torchserve, tfserving)]
        for launcher, record in zip((torchserve, tfserving), records, strict=True):
            launcher.wait_until_ready(settings, record, 120)
        with (work / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway"], env=gateway_env, stdout=log, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        running = gateway

        def ready() -> bool:
            if running.poll() is not None:
                pytest.fail(f"the gateway exited with {running.returncode}:\n{_tail(work / 'gateway.log')}")
            try:
                return requests.get(f"{url}/readyz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, 60, "gateway /readyz 200", work / "gateway.log")
        yield settings, url
    finally:
        if gateway is not None:
            gateway.terminate()
            try:
                gateway.wait(30)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait(5)
        for name in (torchserve.NAME, tfserving.NAME):
            stop_server(settings.run_dir, name)


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str, log: Path | None = None) -> None:
    """Poll ``condition`` until true; fail with the log's tail when ``deadline_s`` passes first."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {deadline_s:.0f} s" + (f"\n{_tail(log)}" if log else ""))
        time.sleep(0.05)


def _metric_sum(metrics: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + "{"))


def _body(mnist: MnistData, index: int) -> dict[str, object]:
    return {"instances": (mnist.test_images[index : index + 1] / 255.0).tolist()}


def test_shadow_traffic_reports_agreement(stack: tuple[ServingSettings, str], mnist: MnistData) -> None:
    _, url = stack
    session = requests.Session()
    for index in range(40):
        response = session.post(f"{url}/v1/models/mnist:predict", json=_body(mnist, index), timeout=TIMEOUT)
        assert response.status_code == 200, response.text
    metrics = ""

    def every_shadow_call_done() -> bool:  # shadow calls run after the answer
        nonlocal metrics
        metrics = session.get(f"{url}/metrics", timeout=TIMEOUT).text
        return _metric_sum(metrics, "gateway_shadow_requests_total") >= 40

    wait_for(every_shadow_call_done, 30, "40 shadow calls counted")
    assert _metric_sum(metrics, "gateway_shadow_requests_total") == 40
    ratios = [line for line in metrics.splitlines() if line.startswith("gateway_shadow_agreement_ratio{")]
    assert ratios, metrics[-2000:]
    assert all(0.8 <= float(line.rsplit(" ", 1)[1]) <= 1.0 for line in ratios), ratios


def test_failover_while_traffic_flows_then_readiness(
    stack: tuple[ServingSettings, str], mnist: MnistData
) -> None:
    settings, url = stack
    outcomes: collections.Counter[object] = collections.Counter()
    served_by: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def traffic() -> None:
        session = requests.Session()
        index = 0
        while not stop.is_set() and index < 2000:
            index += 1
            try:
                response = session.post(
                    f"{url}/v1/models/mnist:predict", json=_body(mnist, 0), timeout=TIMEOUT
                )
            except requests.RequestException as exc:
                outcomes[type(exc).__name__] += 1
                continue
            outcomes[response.status_code] += 1
            if response.status_code == 200:
                served_by[response.headers["X-Gateway-Backend"]] += 1

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: served_by["torchserve-rest"] >= 10, 30, "TorchServe answering under traffic")
        stop_server(settings.run_dir, torchserve.NAME)  # TorchServe goes away mid-traffic
        before = served_by["tfserving-rest"]
        wait_for(lambda: served_by["tfserving-rest"] >= before + 50, 30, "TF Serving taking the traffic")
        assert requests.get(f"{url}/readyz", timeout=TIMEOUT).status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert set(outcomes) == {200}, outcomes  # no client saw the failure

    stop_server(settings.run_dir, tfserving.NAME)
    ready = requests.get(f"{url}/readyz", timeout=TIMEOUT)
    assert ready.status_code == 503
    assert requests.get(f"{url}/livez", timeout=TIMEOUT).status_code == 200
    refused = requests.post(f"{url}/v1/models/mnist:predict", json=_body(mnist, 0), timeout=TIMEOUT)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "unavailable"
