"""How long a proxying gateway takes to start, and what each of its workers holds in memory.

A gateway as a deployment runs it (``python -m gateway``: 2 workers, the gRPC ingress on, a routing
file that only proxies) is started beside the bench's own, in front of the same servers. Start to ready
is the time from the spawn to the first ``/readyz`` that answers 200; then every proxied backend is
called a few times (clients, codecs and stubs get built on first use), and each worker's resident memory
is read. The gateway is stopped (its whole process group) before the next try.
"""

from __future__ import annotations

import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

from model_store import MODEL_NAME
from serving.endpoints import Endpoints
from serving.lifecycle import wait_http
from serving.ports import free_port
from serving.process import group_members, start_server, stop_server
from serving.settings import LOOPBACK, REPO_ROOT
from serving.stack import StackOptions, gateway_environment

__all__ = ["Startup", "measure_startup"]

READY_TIMEOUT_S = 30.0
POLL_S = 0.02
WORKERS = 2


@dataclass(frozen=True)
class Startup:
    ready_s: list[float]
    """Spawn to the first 200 from ``/readyz``, per try."""
    worker_rss_mib: list[float]
    """Resident memory of each worker (every try's), after each proxied backend answered."""
    workers: int
    backends: list[str]
    launchers: list[int]
    """The pid of each start's launcher (its process group is stopped before the next start)."""

    @property
    def median_ready_s(self) -> float | None:
        return statistics.median(self.ready_s) if self.ready_s else None

    @property
    def max_worker_rss_mib(self) -> float | None:
        return max(self.worker_rss_mib) if self.worker_rss_mib else None

    def to_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "median_ready_s": self.median_ready_s,
            "max_worker_rss_mib": self.max_worker_rss_mib,
        }


def _predict(url: str, backend: str, body: bytes) -> None:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", "X-Gateway-Backend": backend}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310  # loopback, our gateway
        response.read()


def _worker_rss_mib(launcher_pid: int) -> list[float]:
    """RSS of the gateway's workers: the processes of its group other than the launcher."""
    rss = []
    for pid in group_members(launcher_pid):
        if pid == launcher_pid:
            continue
        try:
            rss.append(psutil.Process(pid).memory_info().rss / 2**20)
        except psutil.Error:
            continue
    return rss


def measure_startup(
    endpoints: Endpoints,
    options: StackOptions,
    routing: Path,
    backends: Sequence[str],
    body: bytes,
    run_dir: Path,
    tries: int = 3,
) -> Startup:
    """Start a 2-worker proxying gateway ``tries`` times in front of the servers at ``endpoints``."""
    ready: list[float] = []
    rss: list[float] = []
    launchers: list[int] = []
    deployment = replace(options, gateway_workers=WORKERS)
    for attempt in range(tries):
        port = free_port()
        env = gateway_environment(endpoints, deployment, f"{LOOPBACK}:{port}", routing)
        env["GATEWAY_GRPC_BIND"] = f"{LOOPBACK}:{free_port()}"
        name = f"gateway-startup-{attempt}"
        began = time.perf_counter()
        record = start_server(
            name,
            [sys.executable, "-m", "gateway"],
            run_dir=run_dir,
            log_file=run_dir / name / f"{name}.log",
            cwd=REPO_ROOT,
            env=env,
            info={"implementation": "the gateway as deployed: 2 workers, gRPC ingress on"},
        )
        launchers.append(record.pid)
        try:
            url = f"http://{LOOPBACK}:{port}"
            wait_http(f"{url}/readyz", record, READY_TIMEOUT_S, poll_s=POLL_S)
            ready.append(time.perf_counter() - began)
            for backend in backends:  # enough calls to reach both workers
                for _ in range(2 * WORKERS * 4):
                    _predict(f"{url}/v1/models/{MODEL_NAME}:predict", backend, body)
            rss += _worker_rss_mib(record.pid)
        finally:
            stop_server(run_dir, name, grace_s=10.0)
    return Startup(ready, rss, WORKERS, list(backends), launchers)
