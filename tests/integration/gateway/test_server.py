"""``python -m gateway`` under its real server (granian) on a free port: routing reload, metrics, SIGTERM.

The pytorch-side backend is a fake TorchServe (its REST protocol, in this process) so that the routing
switch is visible; the other is the embedded TorchScript model from a real export.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict

from model_store import ModelStore
from tests.integration.gateway.conftest import FakeTorchServe, free_port, start, stop, wait_until_ok

pytestmark = pytest.mark.integration
BODY = json.dumps({"instances": [[0.0] * 784]}).encode()


def post(base: str, path: str = "/v1/models/mnist:predict") -> tuple[int, Message]:
    request = urllib.request.Request(base + path, BODY, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers  # an email Message: names match in any case


def routing(path: Path, backend: str) -> None:
    path.write_text(f"models: {{mnist: {{backends: {{{backend}: 1}}, failover: false}}}}\n")


def predictions_by_worker(metrics_dir: Path) -> dict[int, Counter[str]]:
    """Per worker pid: predict answers by backend, read from that worker's own multiprocess file."""
    out: dict[int, Counter[str]] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_", 1)[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "gateway_requests_total" and labels.get("endpoint") == "predict" and value:
                out.setdefault(pid, Counter())[labels["backend"]] += int(value)
    return out


def switched_workers(base: str, metrics_dir: Path, wanted: str, workers: int = 2, timeout: float = 20) -> int:
    """Send concurrent bursts until every worker (by pid) has answered from ``wanted``: a worker that has
    switched never switches back, so then all have. Returns the number of requests sent."""
    sent = 0
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=8) as pool:
        while time.monotonic() < deadline:
            list(pool.map(lambda _: post(base), range(8)))
            sent += 8
            counts = predictions_by_worker(metrics_dir)
            if len(counts) == workers and all(c[wanted] > 0 for c in counts.values()):
                return sent
    pytest.fail(
        f"not every worker answered from {wanted} within {timeout} s: {predictions_by_worker(metrics_dir)}"
    )


@pytest.fixture
def gateway(
    tmp_path: Path, exported_store: ModelStore, fake_torchserve: FakeTorchServe
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes], Path]]:
    routing_file = tmp_path / "routing.yaml"
    routing(routing_file, "embedded-pytorch")
    port = free_port()
    env = {
        "GATEWAY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_ROUTING_FILE": str(routing_file),
        "GATEWAY_ROUTING_POLL_S": "0.2",
        "GATEWAY_MODEL_STORE": str(exported_store.root),
        "GATEWAY_TORCHSERVE_REST_URL": fake_torchserve.url,
        "GATEWAY_TORCHSERVE_KEY_FILE": str(tmp_path / "no-key-file.json"),
        "GATEWAY_GRACEFUL_TIMEOUT_S": "10",
        "GATEWAY_METRICS_DIR": str(tmp_path / "metrics"),  # one file per worker pid
    }
    process = start(["-m", "gateway"], env, tmp_path / "gateway.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ok(base + "/readyz", 90, process)
        yield base, routing_file, process, tmp_path / "metrics"
    finally:
        stop(process)
    assert process.returncode == 0, (tmp_path / "gateway.log").read_text()[-3000:]


def test_routing_change_takes_effect_without_restart(
    gateway: tuple[str, Path, subprocess.Popen[bytes], Path],
) -> None:
    base, routing_file, _, metrics_dir = gateway
    assert post(base)[1]["X-Gateway-Backend"] == "embedded-pytorch"
    routing(routing_file, "torchserve-rest")
    sent = 1 + switched_workers(base, metrics_dir, "torchserve-rest")
    answers = [post(base)[1]["X-Gateway-Backend"] for _ in range(10)]
    assert answers == ["torchserve-rest"] * 10
    sent += 10
    # Each worker writes its queued metric updates every 0.1 s (gateway.metric_writer): wait for them.
    deadline = time.monotonic() + 5
    while sum(sum(c.values()) for c in predictions_by_worker(metrics_dir).values()) < sent:
        assert time.monotonic() < deadline, f"{sent} sent, counted {predictions_by_worker(metrics_dir)}"
        time.sleep(0.05)
    by_worker = predictions_by_worker(metrics_dir)
    assert len(by_worker) == 2 and all(sum(c.values()) > 0 for c in by_worker.values())
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_requests_total{") and 'endpoint="predict"' in line
    )
    # Exactly what was sent, and the sum of both workers' own counts: /metrics adds the workers up.
    assert total == sent == sum(sum(c.values()) for c in by_worker.values())


def test_sigterm_drops_no_in_flight_request(
    gateway: tuple[str, Path, subprocess.Popen[bytes], Path], fake_torchserve: FakeTorchServe, tmp_path: Path
) -> None:
    base, routing_file, process, metrics_dir = gateway
    routing(routing_file, "torchserve-rest")
    switched_workers(base, metrics_dir, "torchserve-rest")  # both workers route to the fake now
    fake_torchserve.requests = 0
    fake_torchserve.delay = 1.0
    results: list[int] = []
    in_flight = 6  # spread over both workers' threads
    threads = [threading.Thread(target=lambda: results.append(post(base)[0])) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while fake_torchserve.requests < in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_torchserve.requests == in_flight, "the requests never all reached the slow backend"
    process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(15)
    assert results == [200] * in_flight
    process.wait(15)
    log = (tmp_path / "gateway.log").read_text()
    # Each worker logs this line after its own graceful close; a worker killed for taking too long
    # cannot. (granian's "refused to gracefully stop" warning is no evidence either way: its watcher
    # thread can reap a worker that exited while the stopping loop checks it, and then it warns.)
    workers = re.findall(r"Spawning worker-\d+ with PID: (\d+)", log)
    assert len(workers) == 2, log[-3000:]
    for pid in workers:
        assert f"worker {pid} stopped gracefully" in log, log[-3000:]
