"""``python -m gatewaybench bench`` (``make bench-gateway``): what the gateway costs, in one run.

It starts the stack it measures through :mod:`serving.stack` (TF Serving or its named stand-in,
TorchServe, the gateway with one worker; servers pinned away from the load generator), plus the
floor proxy (:mod:`gatewaybench.floorproxy`, the least any Flask proxy does for the same request), and
for each backend measures, A B B A (direct, gateway, gateway, direct):

- at 1 client: p50 and p99, so the gateway's added latency is a difference within the run;
- at ``--clients`` (8): throughput, and CPU per completed request of the gateway's processes and of
  the server, read from their CPU counters over the measured window (psutil);
- the embedded backends (model in the gateway's process) at both points;
- gateway micro-batching off and on (the routing file is rewritten; the gateway reloads it) at 1,
  8 and ``--batch-clients`` (32), beside the server alone at 32;
- a py-spy profile of the gateway worker under load (top frames in the report), the CPU of each
  stage of a request measured in process (:mod:`gatewaybench.stages`), and a ``wrk``
  cross-check of one point when ``wrk`` is installed.

The load generator is closed-loop Python threads, each with its own connection: libcurl handles for
REST, grpcio channels for gRPC. It is lighter than Locust per request (CPU per request decides the
results here) and its own CPU is reported so a saturated generator is never read as server capacity.
Figures on a shared machine are noisy: read ratios within the run, and run it more than once.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pycurl

from gateway.backends.torchserve_keys import TokenSource
from gatewaybench.figures import (
    ALONE,
    BATCHING_MODES,
    GRPC_FLOOR_BACKEND,
    TORCHSERVE_FLOOR_BACKEND,
    Floor,
    Step,
    backend_figures,
    batching_rows,
    evaluate_targets,
    step_from_samples,
)
from gatewaybench.stages import stage_lines
from gatewaybench.startup import measure_startup
from loadtests.backends import spec
from loadtests.environment import describe_machine
from loadtests.grpc_wire import tfserving_codec, torchserve_codec
from loadtests.payloads import Payloads, payloads_from_store
from loadtests.prewarm import prewarm
from loadtests.report.templating import template_environment
from loadtests.saved import write_saved
from loadtests.secrets import scrub_report
from loadtests.stats import percentile
from model_store import MODEL_NAME, ModelStore, default_root
from serving.cpu import Pinning, cpu_seconds, pin_group, pinned, plan_pinning, process_cpu_seconds
from serving.ports import free_port
from serving.process import group_members, start_server, stop_server
from serving.settings import LOOPBACK, REPO_ROOT, ServingSettings
from serving.stack import LocalStack, StackOptions, start_stack
from serving.torchserve import launcher as torchserve

TEMPLATES = Path(__file__).parent / "templates"

__all__ = ["main"]

Call = Callable[[], None]
Connect = Callable[[], Call]
PROXIED = ("tfserving-rest", "tfserving-grpc", "torchserve-rest", "torchserve-grpc")
EMBEDDED = ("embedded-pytorch", "embedded-tensorflow")
BATCHED = "tfserving-rest"
FLOOR = "floorproxy"
FLOOR_PATH = "floor"
STAGE_REQUESTS = 2000
DIRECT_PATHS = ("direct", "floor-direct", ALONE)
"""Step paths that call a model server directly (no gateway or floor process CPU to count)."""


def say(message: str) -> None:
    print(message, flush=True)


# -- clients --------------------------------------------------------------------------------------


def rest_connect(url: str, body: bytes, headers: dict[str, str]) -> Connect:
    header_lines = [f"{k}: {v}" for k, v in {"Content-Type": "application/json", **headers}.items()]

    def connect() -> Call:
        curl = pycurl.Curl()
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.HTTPHEADER, [*header_lines, "Expect:"])
        curl.setopt(pycurl.POSTFIELDS, body)
        curl.setopt(pycurl.TIMEOUT_MS, 10_000)
        chunks: list[bytes] = []
        curl.setopt(pycurl.WRITEFUNCTION, chunks.append)

        def call() -> None:
            chunks.clear()
            curl.perform()
            status = curl.getinfo(pycurl.RESPONSE_CODE)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {b''.join(chunks)[:200]!r}")

        return call

    return connect


def grpc_connect(target: str, method: str, request: bytes, metadata: list[tuple[str, str]]) -> Connect:
    def connect() -> Call:
        stub = grpc.insecure_channel(target).unary_unary(method, _registered_method=False)

        def call() -> None:
            stub(request, timeout=10, metadata=metadata)

        return call

    return connect


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Groups:
    """Process groups whose CPU is read around each window."""

    gateway: int | None
    servers: dict[str, int]


def closed_loop(
    connect: Connect, clients: int, seconds: float, settle_s: float
) -> tuple[list[float], int, float, float]:
    """Each client sends back to back; only requests that start and end inside the window count.

    Returns (latencies, errors, window start, window end) on ``time.perf_counter``'s clock."""
    began = time.perf_counter()
    window = (began + settle_s, began + settle_s + seconds)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(slot: int) -> None:
        call = connect()
        mine = latencies[slot]
        while True:
            started = time.perf_counter()
            if started >= window[1]:
                return
            try:
                call()
            except Exception:
                errors[slot] += 1
                continue
            ended = time.perf_counter()
            if started >= window[0] and ended <= window[1]:
                mine.append(ended - started)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + settle_s + 30)
    return [x for chunk in latencies for x in chunk], sum(errors), window[0], window[1]


class Meter:
    def __init__(self, groups: Groups, seconds: float, settle_s: float) -> None:
        self.groups = groups
        self.seconds = seconds
        self.settle_s = settle_s
        self.steps: list[Step] = []

    def _cpu(self, server: str | None) -> tuple[float, float, float]:
        gateway = cpu_seconds(self.groups.gateway) if self.groups.gateway else 0.0
        pgid = self.groups.servers.get(server or "")
        return gateway, cpu_seconds(pgid) if pgid else 0.0, process_cpu_seconds(os.getpid())

    def measure(self, target: str, connect: Connect, clients: int, server: str | None) -> Step:
        """One window; CPU counters are read when it opens and when it closes."""
        marks: list[tuple[float, float, float]] = []
        timer = threading.Thread(target=self._mark, args=(marks, server), daemon=True)
        timer.start()
        latencies, errors, _, _ = closed_loop(connect, clients, self.seconds, self.settle_s)
        timer.join(5)
        (g0, s0, c0), (g1, s1, c1) = marks if len(marks) == 2 else [(0.0, 0.0, 0.0)] * 2
        via_gateway = target.split("/", 1)[0] not in DIRECT_PATHS
        step = step_from_samples(
            target,
            clients,
            latencies,
            errors,
            self.seconds,
            g1 - g0 if via_gateway and self.groups.gateway else None,
            s1 - s0 if server in self.groups.servers else None,
            c1 - c0,
        )
        self.steps.append(step)
        cpu = f"  gateway CPU {step.gateway_cpu_ms:.3f} ms/req" if step.gateway_cpu_ms is not None else ""
        say(
            f"  {target:28} {clients:>3} clients  p50 {step.p50_ms:7.3f} ms  p99 {step.p99_ms:7.3f} ms  "
            f"{step.rps:7.0f} req/s{cpu}{f'  {errors} ERRORS' if errors else ''}"
        )
        return step

    def _mark(self, marks: list[tuple[float, float, float]], server: str | None) -> None:
        time.sleep(self.settle_s)
        marks.append(self._cpu(server))
        time.sleep(self.seconds)
        marks.append(self._cpu(server))


# -- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """The bench's command line, typed (``python -m gatewaybench bench --help``)."""

    store: Path | None = None
    seconds: float = 4.0
    settle: float = 0.5
    clients: int = 8
    batch_clients: int = 32
    max_batch: int = 32
    max_delay_ms: float = 1.0
    prewarm: float = 10.0
    no_torchserve: bool = False
    no_batching: bool = False
    gateway_threads: int = 256
    gateway_server: str | None = None
    pin: str = "auto"
    out: Path = REPO_ROOT / "reports"


@dataclass
class Bench:
    config: BenchConfig
    stack: LocalStack
    payloads: Payloads
    pinning: Pinning
    out: Path
    token: str

    @property
    def gateway_url(self) -> str:
        return f"{self.stack.endpoints.gateway_url}/v1/models/{MODEL_NAME}:predict"

    def direct(self, backend: str) -> Connect:
        endpoints, digit = self.stack.endpoints, self.payloads.digits[0]
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if backend == "tfserving-rest":
            return rest_connect(
                f"{endpoints.tfserving_rest_url}/v1/models/{MODEL_NAME}:predict", digit.rest_body(), {}
            )
        if backend == "torchserve-rest":
            return rest_connect(
                f"{endpoints.torchserve_url}/predictions/{MODEL_NAME}", digit.rest_body(), auth
            )
        codec = tfserving_codec(MODEL_NAME) if backend == "tfserving-grpc" else torchserve_codec(MODEL_NAME)
        target = (
            endpoints.tfserving_grpc_target
            if backend == "tfserving-grpc"
            else endpoints.torchserve_grpc_target
        )
        metadata = (
            [("authorization", auth["Authorization"])] if auth and backend.startswith("torchserve") else []
        )
        return grpc_connect(target, codec.method, codec.request(digit), metadata)

    def via_gateway(self, backend: str) -> Connect:
        return rest_connect(
            self.gateway_url, self.payloads.digits[0].rest_body(), {"X-Gateway-Backend": backend}
        )

    def server_of(self, backend: str) -> str | None:
        return backend.split("-", 1)[0] if backend in PROXIED else None


def _available(stack: LocalStack, backends: tuple[str, ...]) -> list[str]:
    return [b for b in backends if b.split("-", 1)[0] in stack.records]


def _measure_pairs(bench: Bench, meter: Meter, backends: list[str]) -> None:
    clients = bench.config.clients
    for backend in backends:
        server = bench.server_of(backend)
        say(f"{backend}: direct, gateway, gateway, direct")
        # The server sat idle while the backends before it were measured: after the prewarm,
        # TorchServe's first direct windows here ran at half the rate of its last (286 vs 685 req/s).
        closed_loop(bench.direct(backend), clients, min(bench.config.prewarm, 5.0), 0.0)
        for path in ("direct", "gateway", "gateway", "direct"):
            connect = bench.direct(backend) if path == "direct" else bench.via_gateway(backend)
            for n in (1, clients):
                meter.measure(f"{path}/{backend}", connect, n, server)


def _measure_embedded(bench: Bench, meter: Meter) -> None:
    say("embedded backends (the model runs in the gateway's process)")
    for backend in EMBEDDED:
        for _ in range(2):
            for n in (1, bench.config.clients):
                meter.measure(f"gateway/{backend}", bench.via_gateway(backend), n, None)


def _set_batching(bench: Bench, enabled: bool) -> None:
    """Rewrite the routing file; wait until the gateway has reloaded it (its reload counter moves)."""
    path = bench.stack.run_dir / "routing.yaml"
    routing = json.loads(path.read_text())
    policy = routing["models"][MODEL_NAME]
    policy["batching"] = {
        "enabled": enabled,
        "max_batch": bench.config.max_batch,
        "max_delay_ms": bench.config.max_delay_ms,
    }
    text = json.dumps(routing, indent=2)
    if text == path.read_text():
        return  # already so: the gateway reloads a file only when its content changes
    before = _reloads(bench)
    path.write_text(text)
    deadline = time.monotonic() + 15
    while _reloads(bench) <= before:  # a worker looks at the file when it serves a request
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not reload its routing file within 15 s")
        time.sleep(0.2)


def _reloads(bench: Bench) -> float:
    """Successful routing reloads so far; asking for the model list makes a worker check the file."""
    import urllib.request

    base = bench.stack.endpoints.gateway_url
    with urllib.request.urlopen(f"{base}/v1/models", timeout=5) as answer:  # nosec B310  # http URL of the gateway this bench started
        answer.read()
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:  # nosec B310  # same gateway
        text = answer.read().decode()
    match = re.search(r'^gateway_routing_reloads_total\{outcome="ok"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _measure_batching(bench: Bench, meter: Meter) -> None:
    """Off and on alternate (A B B A) at 1 client, where the difference is small and the noise is not;
    then the loaded points, with the server alone at the widest one."""
    wide = bench.config.batch_clients
    server = bench.server_of(BATCHED)
    connect = bench.via_gateway(BATCHED)
    say(f"gateway micro-batching, {BATCHED}: off / on (max_batch {bench.config.max_batch})")
    try:
        for enabled in (False, True, True, False):
            _set_batching(bench, enabled)
            meter.measure(f"{'batched' if enabled else 'unbatched'}/{BATCHED}", connect, 1, server)
        meter.measure(f"unbatched/{BATCHED}", connect, wide, server)
        _set_batching(bench, True)
        for n in (bench.config.clients, wide):
            meter.measure(f"batched/{BATCHED}", connect, n, server)
    finally:
        _set_batching(bench, False)
    meter.measure(f"{ALONE}/{BATCHED}", bench.direct(BATCHED), wide, server)


def _lone_request_cost(bench: Bench, pairs: int = 2000) -> dict[str, float]:
    """What gateway batching adds to a lone request, request by request.

    The gateway's own :class:`~gateway.batching.MicroBatcher` (with its metrics observer) around the
    gateway's own TF Serving REST backend, called from one thread in this process, batching on and
    off alternating per request (the order flipped every pair), so the machine's drift, which moves
    whole windows by a millisecond or more here, cancels out of each pair's difference.
    """
    from statistics import median

    import numpy as np

    from gateway.backends import BackendPool, Prediction
    from gateway.batching import MicroBatcher
    from gateway.metrics import Metrics
    from gateway.routing import BatchingConfig
    from gateway.settings import Settings

    settings = Settings(tfserving_rest_url=bench.stack.endpoints.tfserving_rest_url)
    backend = BackendPool(settings).get(BATCHED)
    images = np.stack([bench.payloads.digits[0].image])

    def alone(batch: np.ndarray, timeout: float) -> Prediction:
        return backend.predict(MODEL_NAME, batch, None, timeout)

    config = BatchingConfig(
        enabled=True, max_batch=bench.config.max_batch, max_delay_ms=bench.config.max_delay_ms
    )
    batcher = MicroBatcher(MODEL_NAME, BATCHED, config, alone, Metrics())
    say(
        f"gateway micro-batching, {BATCHED}: a lone request on / off, alternating per request ({pairs} pairs)"
    )
    on_ms: list[float] = []
    off_ms: list[float] = []
    for index in range(pairs):
        for batched in (index % 2 == 0, index % 2 != 0):
            started = time.perf_counter()
            batcher.run(images, 5.0) if batched else alone(images, 5.0)
            (on_ms if batched else off_ms).append((time.perf_counter() - started) * 1000.0)
    differences = [on - off for on, off in zip(on_ms, off_ms, strict=True)]
    figures = {
        "pairs": float(pairs),
        "on_p50_ms": median(on_ms),
        "off_p50_ms": median(off_ms),
        "median_difference_ms": median(differences),
    }
    say(
        f"  lone request: p50 on {figures['on_p50_ms']:.3f} ms, off {figures['off_p50_ms']:.3f} ms; "
        f"median of paired differences {figures['median_difference_ms']:+.3f} ms"
    )
    backend.close()
    return figures


def _compare_batching_on_torchserve(bench: Bench, meter: Meter) -> None:
    """No batching, gateway batching and TorchServe's own batching, on the same TorchServe, at 1, 8
    and ``--batch-clients`` clients. TorchServe is restarted with ``batchSize``/``maxBatchDelay`` for
    the last, and again without them afterwards."""
    backend, server, points = (
        "torchserve-rest",
        "torchserve",
        (1, bench.config.clients, bench.config.batch_clients),
    )
    say(f"batching on TorchServe: none, in the gateway, in TorchServe (batchSize {bench.config.max_batch})")
    for n in points:
        meter.measure(f"{ALONE}/{backend}", bench.direct(backend), n, server)
    _set_batching(bench, True)
    try:
        for n in points:
            meter.measure(f"batched/{backend}", bench.via_gateway(backend), n, server)
    finally:
        _set_batching(bench, False)
    batching = replace(
        bench.stack.serving,
        ts_batch_size=bench.config.max_batch,
        ts_max_batch_delay_ms=int(bench.config.max_delay_ms),
    )
    _restart_torchserve(bench, meter, batching)
    try:
        for n in points:
            meter.measure(f"server-batched/{backend}", bench.direct(backend), n, server)
    finally:
        _restart_torchserve(bench, meter, bench.stack.serving)


def _restart_torchserve(bench: Bench, meter: Meter, serving: ServingSettings) -> None:
    stop_server(bench.stack.run_dir, "torchserve", grace_s=15)
    with pinned(bench.pinning.servers if bench.pinning.active else None):
        record = torchserve.start(serving)
    torchserve.wait_until_ready(serving, record, 180)
    if bench.pinning.active:
        pin_group(record.pid, bench.pinning.servers)
    bench.stack.records["torchserve"] = record
    meter.groups.servers["torchserve"] = record.pid
    bench.token = TokenSource(Path(bench.stack.endpoints.torchserve_key_file)).token()  # new keys
    headers = {"Authorization": f"Bearer {bench.token}"} if bench.token else {}
    prewarm(["torchserve-rest"], bench.stack.endpoints, bench.payloads, headers, bench.config.prewarm)


@contextmanager
def _floor_proxy(
    bench: Bench, backend: str = "", model: str = "", grpc_target: str = "", authorization: str = ""
) -> Iterator[str]:
    """The floor proxy in front of ``backend`` (a REST URL, sent ``authorization`` when given) or of
    TF Serving's gRPC ``grpc_target`` (neither: answering by itself, with the TorchScript file
    ``model`` when given, else a fixed answer), until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory", "--workers", "1"]
    threads = str(bench.config.gateway_threads)  # the same server settings as the gateway's
    command += ["--blocking-threads", threads, "--host", LOOPBACK, "--port", str(port), "--no-ws"]
    command += ["--log-level", "warning", "gatewaybench.floorproxy:create_app"]
    with pinned(bench.pinning.servers if bench.pinning.active else None):
        start_server(
            FLOOR,
            command,
            run_dir=bench.stack.run_dir,
            log_file=bench.stack.run_dir / FLOOR / f"{FLOOR}.log",
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "FLOOR_BACKEND_URL": backend,
                "FLOOR_BACKEND_GRPC": grpc_target,
                "FLOOR_MODEL": model,
                "FLOOR_BACKEND_AUTHORIZATION": authorization,
            },
            info={"implementation": "plain WSGI proxy under granian (gatewaybench.floorproxy)"},
        )
    try:
        url = f"http://{LOOPBACK}:{port}/v1/models/{MODEL_NAME}:predict"
        deadline = time.monotonic() + 30
        probe = rest_connect(url, bench.payloads.digits[0].rest_body(), {})()
        while True:
            try:
                probe()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield url
    finally:
        stop_server(bench.stack.run_dir, FLOOR, grace_s=10)


def _measure_floor(bench: Bench, meter: Meter) -> dict[str, object]:
    endpoints = bench.stack.endpoints
    to_torchserve = "torchserve" in bench.stack.records and bool(bench.token)
    say(
        "floor: a plain WSGI proxy (granian, libcurl) in front of tfserving-rest, then of tfserving-grpc "
        f"(grpcio){', then of torchserve-rest' if to_torchserve else ''}, then answering by itself "
        "(a fixed answer, then the same TorchScript the embedded backend runs)"
    )
    body = bench.payloads.digits[0].rest_body()
    figures: dict[str, object] = {}
    script = _torchscript(ModelStore(bench.config.store or default_root(), MODEL_NAME))
    runs: list[tuple[str, dict[str, str]]] = [  # what the floor stands for, how it is started
        (BATCHED, {"backend": f"{endpoints.tfserving_rest_url}/v1/models/{MODEL_NAME}:predict"}),
        (GRPC_FLOOR_BACKEND, {"grpc_target": endpoints.tfserving_grpc_target}),  # TF runs in every bench
    ]
    if to_torchserve:
        ts_url = f"{endpoints.torchserve_url}/predictions/{MODEL_NAME}"
        runs.append((TORCHSERVE_FLOOR_BACKEND, {"backend": ts_url, "authorization": f"Bearer {bench.token}"}))
    runs.append(("fixed-answer", {}))
    if script:
        runs.append(("torchscript", {"model": script}))
    for role, options in runs:
        with _floor_proxy(bench, **options) as url:
            record = bench.stack.run_dir / "pids" / f"{FLOOR}.json"
            pgid = int(json.loads(record.read_text())["pid"]) if record.exists() else None
            floor_meter = Meter(Groups(pgid, meter.groups.servers), meter.seconds, meter.settle_s)
            connect = rest_connect(url, body, {})
            if role == BATCHED:
                figures.update(_floor_beside_direct(bench, floor_meter, connect, BATCHED))
            elif role == GRPC_FLOOR_BACKEND:
                figures["grpc"] = _floor_beside_direct(bench, floor_meter, connect, GRPC_FLOOR_BACKEND)
            elif role == TORCHSERVE_FLOOR_BACKEND:
                figures["torchserve"] = _floor_beside_direct(bench, floor_meter, connect, role)
            else:
                alone = floor_meter.measure(f"floor/{role}", connect, bench.config.clients, None)
                key = "model_cpu_ms_per_request" if role == "torchscript" else "answer_cpu_ms_per_request"
                figures[key] = alone.gateway_cpu_ms
            meter.steps.extend(floor_meter.steps)
    figures["generator_rps"] = _measure_generator_ceiling(bench, meter)
    return figures


def _floor_beside_direct(bench: Bench, meter: Meter, floor: Connect, backend: str) -> dict[str, float | None]:
    """The proxying floor in its own A B B A with fresh direct windows (direct, floor, floor, direct),
    as the gateway is measured: its added p50 and throughput ratio then come from windows minutes apart
    from the gateway's only as much as from their own direct ones (the machine drifts by a millisecond
    between windows here, twice the added-p50 target)."""
    clients = bench.config.clients
    direct = bench.direct(backend)
    server = spec(backend).server
    for path in ("floor-direct", FLOOR_PATH, FLOOR_PATH, "floor-direct"):
        for n in (1, clients):
            meter.measure(f"{path}/{backend}", direct if path == "floor-direct" else floor, n, server)

    def median_of(path: str, n: int, figure: str) -> float | None:
        steps = [s for s in meter.steps if s.target == f"{path}/{backend}" and s.clients == n]
        known = [value for s in steps if (value := getattr(s, figure)) is not None]
        return statistics.median(known) if known else None

    return {
        "p50_ms_1_client": median_of(FLOOR_PATH, 1, "p50_ms"),
        "direct_p50_ms_1_client": median_of("floor-direct", 1, "p50_ms"),
        "cpu_ms_per_request": median_of(FLOOR_PATH, clients, "gateway_cpu_ms"),
        "rps": median_of(FLOOR_PATH, clients, "rps"),
        "direct_rps": median_of("floor-direct", clients, "rps"),
    }


def _torchscript(store: ModelStore) -> str:
    """The latest version's TorchScript file, the one the embedded PyTorch backend loads ("" if none)."""
    version = store.latest_version()
    try:
        return str(store.torchscript_file(version)) if version is not None else ""
    except KeyError:
        return ""


def _measure_generator_ceiling(bench: Bench, meter: Meter) -> float | None:
    """The load generator's own ceiling at the batching point: the same clients against the stack's
    null endpoints (serving.nullserver). No path through any server can be measured faster."""
    if "nullserver" not in bench.stack.records:
        say("  the null endpoints did not start; no ceiling measured")
        return None
    clients = bench.config.batch_clients
    say(f"generator ceiling: {clients} clients against null endpoints")
    url = f"{bench.stack.endpoints.null_url}/v1/models/{MODEL_NAME}:predict"
    connect = rest_connect(url, bench.payloads.digits[0].rest_body(), {})
    return meter.measure(f"null/{BATCHED}", connect, clients, None).rps


def _worker_pid(stack: LocalStack) -> int | None:
    record = stack.records.get("gateway")
    if record is None:
        return None
    workers = [pid for pid in group_members(record.pid) if pid != record.pid]
    return workers[0] if workers else None


def _profile(bench: Bench, meter: Meter) -> dict[str, object]:
    """py-spy (GIL-holding samples only, i.e. where the worker spends CPU) during a loaded window."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    worker = _worker_pid(bench.stack)
    if worker is None or not Path(spy).exists():
        return {"skipped": "py-spy or the gateway worker not found"}
    raw = bench.out / "profile.txt"
    seconds = max(int(bench.config.seconds), 3)
    command = [spy, "record", "-p", str(worker), "-d", str(seconds), "-r", "250", "--gil", "--nonblocking"]
    command += ["-f", "raw", "-o", str(raw)]
    spy_run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    closed_loop(bench.via_gateway(BATCHED), bench.config.clients, seconds, 0.0)
    _, error = spy_run.communicate(timeout=60)
    if spy_run.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed: {error.decode(errors='replace')[-300:]}"}
    return summarize_profile(raw.read_text())


def summarize_profile(raw: str, top: int = 15) -> dict[str, object]:
    """py-spy's raw (collapsed) stacks -> top frames by own samples and the gateway's own functions
    by inclusive samples, in percent of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            if frame.startswith(("gateway/", "flask/", "werkzeug/", "granian/", "gunicorn/")):
                inclusive[frame] += count
    if total == 0:
        return {"samples": 0}
    share = lambda n: round(100.0 * n / total, 1)  # noqa: E731
    return {
        "samples": total,
        "self": [[frame, share(n)] for frame, n in own.most_common(top)],
        "inclusive": [[frame, share(n)] for frame, n in inclusive.most_common(top)],
    }


def _frame(text: str) -> str:
    """``function (path/to/module.py:12)`` -> ``package/module.py:function``."""
    name, _, where = text.partition(" (")
    path = where.split(":")[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{short}:{name.strip()}"


def _stages(bench: Bench) -> dict[str, object]:
    """:mod:`gatewaybench.stages` in a process of its own, on the load generator's CPUs."""
    body = bench.out / "stages-body.json"
    body.write_bytes(bench.payloads.digits[0].rest_body())
    command = [sys.executable, "-m", "gatewaybench.stages", "--body", str(body)]
    command += ["--url", bench.stack.endpoints.tfserving_rest_url, "--requests", str(STAGE_REQUESTS)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        return {"skipped": "the in-process measurement took more than 300 s"}
    if done.returncode != 0 or not done.stdout.strip():
        return {"skipped": f"the in-process measurement failed: {done.stderr.strip()[-300:]}"}
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _wrk(bench: Bench) -> dict[str, object]:
    """One point with an independent generator: wrk at 1 connection, gateway -> tfserving-rest, in
    windows interleaved with this harness's own (ours, wrk, wrk, ours): measured minutes apart, the two
    would differ by the machine's drift as much as by the generators."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (Debian package wrk)"}
    body = bench.out / "wrk-body.json"
    body.write_bytes(bench.payloads.digits[0].rest_body())
    script = bench.out / "wrk.lua"
    script.write_text(
        f'local f = io.open("{body}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-Gateway-Backend"] = "{BATCHED}"\n'
    )
    seconds = max(int(bench.config.seconds), 2)
    command = [wrk, "-t1", "-c1", f"-d{seconds}s", "--latency", "-s", str(script), bench.gateway_url]
    ours: list[float] = []
    theirs: list[float] = []
    for tool in ("ours", "wrk", "wrk", "ours"):
        if tool == "ours":
            latencies, _, _, _ = closed_loop(bench.via_gateway(BATCHED), 1, seconds, bench.config.settle)
            ours.append(1000.0 * percentile(latencies, 50))
            continue
        with pinned(bench.pinning.generator if bench.pinning.active else None):
            output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
        match = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            return {"skipped": f"could not read wrk's output: {output[-300:]}"}
        theirs.append(float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)])
    return {"tool": "wrk", "target": f"gateway/{BATCHED}", "p50_ms": theirs, "ours_p50_ms": ours}


def _report(bench: Bench, steps: list[Step], extras: dict[str, object]) -> int:
    """Work out the figures and target lines, write results.json, print the summary and save it."""
    config = bench.config
    measured = dict.fromkeys(s.backend for s in steps if s.path in ("direct", "gateway"))  # not floor runs
    figures = [backend_figures(steps, b, 1, config.clients) for b in measured]
    figures = [f for f in figures if f.backend != BATCHED or f.gateway_p50_ms is not None]
    floor = extras.get("floor")
    lines = evaluate_targets(
        figures,
        steps,
        BATCHED,
        config.batch_clients,
        Floor.from_dict(floor) if isinstance(floor, dict) else None,
        lone if isinstance(lone := extras.get("lone_request"), dict) else None,
        stages if isinstance(stages := extras.get("stages"), dict) else None,
        startup if isinstance(startup := extras.get("startup"), dict) else None,
    )
    points = (1, config.clients, config.batch_clients)
    batching = [row for b in (BATCHED, "torchserve-rest") for row in batching_rows(steps, b, points)]
    results = {
        "format": "gateway-bench/1",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "settings": {
            "seconds": config.seconds,
            "clients": config.clients,
            "batch_clients": config.batch_clients,
        },
        "environment": {**describe_machine(REPO_ROOT), "pinning": bench.pinning.to_dict()},
        "servers": bench.stack.describe(),
        "steps": [s.to_dict() for s in steps],
        "figures": [f.to_dict() for f in figures],
        "targets": [line.to_dict() for line in lines],
        "batching": [row.to_dict() for row in batching],
        **extras,
    }
    write_saved(bench.out / "results.json", "gateway-bench", results)
    summary = summary_text(results)
    (bench.out / "summary.txt").write_text(summary)
    say("\n" + summary)
    say(f"Results: {bench.out / 'results.json'}; this summary: {bench.out / 'summary.txt'}")
    return 0


def summary_text(results: Mapping[str, Any]) -> str:
    """The printed summary (``templates/bench.txt``), from a results.json alone."""
    floor = results.get("floor")
    proxies: list[tuple[str, object]] = []
    if isinstance(floor, dict):
        proxies = [(BATCHED, floor), (GRPC_FLOOR_BACKEND, floor.get("grpc") or {})]
        if isinstance(torchserve_floor := floor.get("torchserve"), dict):
            proxies.append((TORCHSERVE_FLOOR_BACKEND, torchserve_floor))
    stages = results.get("stages")
    values = {
        "run": results.get("settings") or _settings_from_argv(results.get("argv", [])),
        "figures": results["figures"],
        "floor": floor if isinstance(floor, dict) else None,
        "proxies": proxies,
        "batching": results["batching"],
        "modes": BATCHING_MODES,
        "targets": results["targets"],
        "profile": results.get("profile"),
        "stages": stages,
        "stage_lines": stage_lines(stages) if isinstance(stages, dict) and "stages_us" in stages else [],
        "crosscheck": results.get("crosscheck"),
        "batched": BATCHED,
    }
    return template_environment(TEMPLATES).get_template("bench.txt").render(values)


def _settings_from_argv(argv: list[str]) -> dict[str, float]:
    """A run saved before results.json recorded its settings: they are in its command line."""
    args, _ = _parser().parse_known_args([arg for arg in argv if arg != "bench-gateway"])  # old options too
    return {"seconds": args.seconds, "clients": args.clients, "batch_clients": args.batch_clients}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gatewaybench bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--store", type=Path, default=None, help="model store root (default: the store's default)"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per step (default 4)")
    parser.add_argument(
        "--settle", type=float, default=0.5, help="unmeasured start of each step (default 0.5)"
    )
    parser.add_argument("--clients", type=int, default=8, help="clients for throughput and CPU (default 8)")
    parser.add_argument(
        "--batch-clients", type=int, default=32, help="clients for the batching step (default 32)"
    )
    parser.add_argument("--max-batch", type=int, default=32, help="gateway batching: max images per call")
    parser.add_argument("--max-delay-ms", type=float, default=1.0, help="gateway batching: max fill delay")
    parser.add_argument(
        "--prewarm", type=float, default=10.0, help="seconds of warm-up per server (default 10)"
    )
    parser.add_argument(
        "--no-torchserve", action="store_true", help="skip TorchServe (its JVM takes a while)"
    )
    parser.add_argument("--no-batching", action="store_true", help="skip the micro-batching steps")
    parser.add_argument(
        "--gateway-threads", type=int, default=256, help="threads of the one gateway worker (default 256)"
    )
    parser.add_argument(
        "--gateway-server",
        choices=("granian", "gunicorn"),
        default=None,
        help="WSGI server (default granian)",
    )
    parser.add_argument(
        "--pin", default="auto", help="auto, off, or SERVER_CPUS:GENERATOR_CPUS (default auto)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "reports", help="report root (default reports/)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    config = BenchConfig(**vars(_parser().parse_args(argv)))
    store = ModelStore(config.store or default_root(), MODEL_NAME)
    if store.latest_version() is None:
        say(f"error: no model in {store.model_dir}; run `make demo` or `make export` first")
        return 2
    from exporters.mnist import load_mnist

    data = load_mnist()
    payloads = payloads_from_store(store, data.test_images, data.test_labels, count=4)
    pinning = plan_pinning(config.pin)
    out = config.out / f"gateway-bench-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    servers = ("tfserving",) if config.no_torchserve else ("torchserve", "tfserving")
    components = (*servers, "gateway", "nullserver")
    say(
        f"Starting {', '.join(components)} (servers on CPUs {list(pinning.servers)}, "
        f"load generator on {list(pinning.generator)}; {pinning.note or pinning.mode})"
    )
    options = StackOptions(
        store_root=store.root,
        run_dir=out / "servers",
        gateway_workers=1,
        gateway_threads=config.gateway_threads,
        gateway_server=config.gateway_server,
        components=components,
        pinning=pinning,
    )
    stack = start_stack(options, say)
    try:
        return _run(config, stack, options, payloads, out)
    finally:
        say("Stopping what this run started...")
        leftovers = stack.stop()
        say(
            "  error: processes remain: " + ", ".join(leftovers)
            if leftovers
            else "  stopped (no process remains)"
        )
        scrub_report(out)  # TorchServe's keys stay out of a report made to be shared


def _run(config: BenchConfig, stack: LocalStack, options: StackOptions, payloads: Payloads, out: Path) -> int:
    pinning = options.pinning
    assert pinning is not None, "main() plans the pinning"
    if "gateway" not in stack.records or "tfserving" not in stack.records:
        say(f"error: the gateway and TF Serving must run for this benchmark: {stack.failures}")
        return 1
    key_file = stack.endpoints.torchserve_key_file
    token = TokenSource(Path(key_file)).token() if key_file else ""
    bench = Bench(config, stack, payloads, pinning, out, token)
    proxied = _available(stack, PROXIED)
    say(f"Warming the servers for {config.prewarm:g} s each: {', '.join(proxied)}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    prewarm(proxied, stack.endpoints, payloads, headers, config.prewarm)
    for backend in (*proxied, *EMBEDDED):
        closed_loop(bench.via_gateway(backend), 4, min(config.prewarm, 3.0), 0.0)
    groups = Groups(stack.records["gateway"].pid, {name: r.pid for name, r in stack.records.items()})
    meter = Meter(groups, config.seconds, config.settle)
    if pinning.active:
        os.sched_setaffinity(0, set(pinning.generator))  # the client threads start after this
    _measure_pairs(bench, meter, proxied)
    _measure_embedded(bench, meter)
    if not config.no_batching:
        _measure_batching(bench, meter)
        if "torchserve-rest" in proxied and bench.token:
            _compare_batching_on_torchserve(bench, meter)
    extras: dict[str, object] = {"floor": _measure_floor(bench, meter)}
    if not config.no_batching:
        extras["lone_request"] = _lone_request_cost(bench)
    say("profile of the gateway worker (py-spy) and an independent cross-check (wrk)")
    extras["profile"] = _profile(bench, meter)
    say(f"the gateway's stages in process (one thread, {STAGE_REQUESTS} requests to {BATCHED})")
    extras["stages"] = _stages(bench)
    extras["crosscheck"] = _wrk(bench)
    extras["startup"] = _startup(bench, options, proxied)
    return _report(bench, meter.steps, extras)


def _startup(bench: Bench, options: StackOptions, proxied: list[str]) -> dict[str, object]:
    """The gateway as deployed (2 workers, gRPC ingress on, the checkout's gateway/routing.yaml, which
    only proxies: an embedded backend would load TensorFlow and torch into every worker), started
    beside the bench's own."""
    say("the gateway as deployed: start to ready and each worker's memory (2 workers, gRPC ingress on)")
    routing = REPO_ROOT / "gateway" / "routing.yaml"
    try:
        result = measure_startup(
            bench.stack.endpoints,
            options,
            routing,
            proxied,
            bench.payloads.digits[0].rest_body(),
            bench.out / "startup",
        )
    except (RuntimeError, OSError) as exc:
        say(f"  skipped: {exc}")
        return {"skipped": str(exc)}
    say(
        f"  ready in {', '.join(f'{s:.2f}' for s in result.ready_s)} s; worker RSS "
        f"{', '.join(f'{m:.0f}' for m in result.worker_rss_mib)} MiB"
    )
    return result.to_dict()
