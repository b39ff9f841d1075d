"""Gateway overhead benchmark: added latency (p50, p99) and throughput via gateway / direct, per backend.

    python -m gateway.bench [--store DIR] [--duration 5] [--concurrency 4] [--json out.json]
                            [--torchserve-url http://127.0.0.1:8080 --torchserve-grpc 127.0.0.1:7070]

It starts what it needs and stops it: the TF-Serving-compatible stand-in (``serving.tfserving.devserver``)
on free loopback ports and the gateway under gunicorn (one worker). TorchServe is measured only when its
addresses are given (a running ``make serve``), with the token from ``GATEWAY_TORCHSERVE_KEY_FILE``.
For each backend and transport it runs, one after the other: direct, via gateway, via gateway, direct
(A B B A), each a warm-up then ``--duration`` seconds at concurrency 1 (latency) and at ``--concurrency``
(throughput). Timings are raw ``perf_counter`` per request. The client runs in this process (Python
threads): on a 2-core machine the client, gateway and server share the cores — read ratios, not RPS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import urllib3

from gateway.settings import Settings
from model_store import MODEL_NAME, ModelStore, default_root
from serving.torchserve.tokens import TokenSource

Call = Callable[[], None]


@dataclass
class Figures:
    target: str
    path: str
    p50_ms: float
    p99_ms: float
    rps: float
    requests: int
    errors: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, timeout: float, process: subprocess.Popen[bytes], name: str) -> None:
    http = urllib3.PoolManager(retries=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}; see its log")
        try:
            if http.request("GET", url, timeout=1.0).status == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {timeout} s")


@contextmanager
def _process(args: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, stdout=stream, stderr=stream
        )
    try:
        _wait(ready_url, 180, process, str(log))
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _rest_call(url: str, body: bytes, headers: dict[str, str]) -> Call:
    http = urllib3.PoolManager(maxsize=64, retries=False)
    all_headers = {"Content-Type": "application/json", **headers}

    def call() -> None:
        response = http.request("POST", url, body=body, headers=all_headers, timeout=10.0)
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status}")

    return call


def _tfs_grpc_call(target: str, images: np.ndarray) -> Call:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    tensor = request.inputs["image"]
    tensor.dtype = 1  # DT_FLOAT
    for size in images.shape:
        tensor.tensor_shape.dim.add().size = size
    tensor.tensor_content = images.astype("<f4").tobytes()

    def call() -> None:
        stub.Predict(request, timeout=10.0)

    return call


def _ts_grpc_call(target: str, body: bytes, token: str) -> Call:
    import grpc

    from serving.torchserve.grpc_stubs import ensure_torchserve_stubs

    messages, services = ensure_torchserve_stubs()
    stub = services.InferenceAPIsServiceStub(grpc.insecure_channel(target))
    request = messages.PredictionsRequest(model_name=MODEL_NAME, input={"data": body})
    metadata = [("authorization", f"Bearer {token}")] if token else []

    def call() -> None:
        stub.Predictions(request, timeout=10.0, metadata=metadata)

    return call


def _run(call: Call, seconds: float, threads: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = [0]
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()

    def loop() -> None:
        mine: list[float] = []
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                call()
            except Exception:
                with lock:
                    errors[0] += 1
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, errors[0], time.perf_counter() - began


def measure(target: str, path: str, call: Call, seconds: float, concurrency: int, warmup: int) -> Figures:
    for _ in range(warmup):
        call()
    latencies, errors, _ = _run(call, seconds, 1)
    through, errors_c, elapsed = _run(call, seconds, concurrency)
    quantiles = np.percentile(np.asarray(latencies) * 1000, [50, 99]) if latencies else [float("nan")] * 2
    return Figures(
        target,
        path,
        float(quantiles[0]),
        float(quantiles[1]),
        len(through) / elapsed,
        len(latencies),
        errors + errors_c,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--store", type=Path, default=None, help="model store root (default: the store's default)"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="client threads for throughput (default 4)"
    )
    parser.add_argument("--warmup", type=int, default=300, help="requests discarded first (default 300)")
    parser.add_argument("--torchserve-url", default="", help="running TorchServe inference URL (optional)")
    parser.add_argument("--torchserve-grpc", default="", help="running TorchServe gRPC host:port (optional)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = parser.parse_args(argv)

    store = ModelStore(args.store or default_root(), MODEL_NAME)
    if not store.versions():
        print(f"no model in {store.model_dir}; run `python -m exporters export` first", file=sys.stderr)
        return 2
    from exporters.mnist import load_mnist

    image = (load_mnist().test_images[:1] / 255.0).astype(np.float32)
    body = json.dumps({"instances": image.tolist()}).encode()
    token = TokenSource(Settings.from_env().torchserve_key_file).token()
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    rest, grpc_port, gw_port = _free_port(), _free_port(), _free_port()
    routing = work / "routing.yaml"
    backends = {"tfserving-rest": 1, "tfserving-grpc": 0}
    if args.torchserve_url:
        backends["torchserve-rest"] = 0
    if args.torchserve_grpc:
        backends["torchserve-grpc"] = 0
    routing.write_text(json.dumps({"models": {MODEL_NAME: {"backends": backends, "failover": False}}}))
    gateway_env = {
        "GATEWAY_BIND": f"127.0.0.1:{gw_port}",
        "GATEWAY_WORKERS": "1",
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_TFSERVING_REST_URL": f"http://127.0.0.1:{rest}",
        "GATEWAY_TFSERVING_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
        "GATEWAY_LOG_LEVEL": "warning",
        **({"GATEWAY_TORCHSERVE_REST_URL": args.torchserve_url} if args.torchserve_url else {}),
        **({"GATEWAY_TORCHSERVE_GRPC_TARGET": args.torchserve_grpc} if args.torchserve_grpc else {}),
    }
    devserver = ["-m", "serving.tfserving.devserver", "--model-name", MODEL_NAME]
    devserver += ["--model-base-path", str(store.model_dir), "--host", "127.0.0.1"]
    devserver += ["--rest-port", str(rest), "--grpc-port", str(grpc_port), "--log-level", "WARNING"]
    gateway_url = f"http://127.0.0.1:{gw_port}/v1/models/{MODEL_NAME}:predict?backend="
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    direct: dict[str, Call] = {
        "tfserving-rest": _rest_call(f"http://127.0.0.1:{rest}/v1/models/{MODEL_NAME}:predict", body, {}),
        "tfserving-grpc": _tfs_grpc_call(f"127.0.0.1:{grpc_port}", image),
    }
    if args.torchserve_url:
        direct["torchserve-rest"] = _rest_call(f"{args.torchserve_url}/predictions/{MODEL_NAME}", body, auth)
    if args.torchserve_grpc:
        direct["torchserve-grpc"] = _ts_grpc_call(args.torchserve_grpc, body, token)

    results: list[Figures] = []
    with (
        _process(devserver, {}, f"http://127.0.0.1:{rest}/v1/models/{MODEL_NAME}", work / "devserver.log"),
        _process(["-m", "gateway"], gateway_env, f"http://127.0.0.1:{gw_port}/readyz", work / "gateway.log"),
    ):
        for name, direct_call in direct.items():
            via = _rest_call(gateway_url + name, body, {})
            for path, call in (
                ("direct", direct_call),
                ("gateway", via),
                ("gateway", via),
                ("direct", direct_call),
            ):
                results.append(measure(name, path, call, args.duration, args.concurrency, args.warmup))
                print(f"  measured {name:16} {path:8} p50 {results[-1].p50_ms:7.3f} ms", file=sys.stderr)
    _report(results, args)
    return 0


def _report(results: list[Figures], args: argparse.Namespace) -> None:
    print(
        f"\nGateway overhead on loopback ({platform.machine()}, {os.cpu_count()} cores, "
        f"{args.duration:g} s per step, throughput at {args.concurrency} client threads; A B B A medians)"
    )
    print(
        f"{'backend':18}{'direct p50':>12}{'gw p50':>10}{'added p50':>11}{'added p99':>11}{'direct rps':>12}"
        f"{'gw rps':>9}{'ratio':>8}"
    )
    summary = []
    for name in dict.fromkeys(r.target for r in results):
        d = [r for r in results if r.target == name and r.path == "direct"]
        g = [r for r in results if r.target == name and r.path == "gateway"]
        row: dict[str, Any] = {
            "backend": name,
            "direct_p50_ms": statistics.median(r.p50_ms for r in d),
            "gateway_p50_ms": statistics.median(r.p50_ms for r in g),
            "added_p50_ms": statistics.median(r.p50_ms for r in g) - statistics.median(r.p50_ms for r in d),
            "added_p99_ms": statistics.median(r.p99_ms for r in g) - statistics.median(r.p99_ms for r in d),
            "direct_rps": statistics.median(r.rps for r in d),
            "gateway_rps": statistics.median(r.rps for r in g),
            "errors": sum(r.errors for r in d + g),
        }
        row["throughput_ratio"] = (
            row["gateway_rps"] / row["direct_rps"] if row["direct_rps"] else float("nan")
        )
        summary.append(row)
        print(
            f"{name:18}{row['direct_p50_ms']:12.3f}{row['gateway_p50_ms']:10.3f}{row['added_p50_ms']:11.3f}"
            f"{row['added_p99_ms']:11.3f}{row['direct_rps']:12.0f}{row['gateway_rps']:9.0f}{row['throughput_ratio']:8.2f}"
        )
    if args.json is not None:
        raw: dict[str, Any] = {"summary": summary, "runs": [asdict(r) for r in results], "argv": sys.argv[1:]}
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    sys.exit(main())
