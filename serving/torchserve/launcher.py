"""Start TorchServe (the real Java frontend) against the model store and wait for ready workers.

We launch the frontend the way ``torchserve --start`` does, but directly, so that we own its
process group and are not tied to ``torchserve``'s single global PID file in /tmp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ts

from gateway.backends.torchserve_keys import TokenError, TokenSource
from model_store import ModelStore
from model_store.checksums import sha256_file
from serving.errors import ServerStartError
from serving.http import request_json
from serving.java import find_java
from serving.ports import ensure_free
from serving.process import ServerRecord, process_group_alive, read_record, start_server, tail
from serving.settings import LOOPBACK, ServingSettings
from serving.torchserve.config import TorchServeConfig, render

NAME = "torchserve"
_FATAL_PATTERNS = (
    "Backend worker process died",
    "Failed to load model",
    "Invalid configuration",
    "Load model failed",
    'Exception in thread "main"',
)


@dataclass(frozen=True)
class Endpoints:
    inference: str
    management: str
    metrics: str
    grpc_inference: str


def endpoints(settings: ServingSettings) -> Endpoints:
    return Endpoints(
        inference=f"http://{settings.host}:{settings.ts_inference_port}",
        management=f"http://{LOOPBACK}:{settings.ts_management_port}",
        metrics=f"http://{settings.host}:{settings.ts_metrics_port}/metrics",
        grpc_inference=f"{settings.host}:{settings.ts_grpc_inference_port}",
    )


def check_ports(settings: ServingSettings) -> None:
    ensure_free(
        settings.host,
        [
            ("TorchServe inference", settings.ts_inference_port),
            ("TorchServe metrics", settings.ts_metrics_port),
            ("TorchServe gRPC inference", settings.ts_grpc_inference_port),
        ],
    )
    ensure_free(
        LOOPBACK,
        [
            ("TorchServe management", settings.ts_management_port),
            ("TorchServe gRPC management", settings.ts_grpc_management_port),
        ],
    )


def record(settings: ServingSettings) -> ServerRecord:
    found = read_record(settings.run_dir, NAME)
    if found is None:
        raise ServerStartError(f"TorchServe is not recorded in {settings.run_dir}")
    return found


def select_versions(store: ModelStore, policy: str) -> list[int]:
    available = store.versions()
    if not available:
        raise ServerStartError(
            f"no model version in {store.model_dir}; run `make demo` (or `make export`) to build one"
        )
    if policy == "latest":
        return available[-1:]
    if policy == "all":
        return available
    wanted = sorted({int(part) for part in policy.split(",") if part.strip()})
    missing = [version for version in wanted if version not in available]
    if missing:
        raise ServerStartError(f"versions {missing} are not in {store.model_dir} (it has {available})")
    return wanted


def detect_gpus() -> int:
    """Number of NVIDIA GPUs visible (0 without nvidia-smi or a driver)."""
    nvidia_smi = shutil.which("nvidia-smi")
    if not nvidia_smi:
        return 0
    try:
        result = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in result.stdout.splitlines() if line.startswith("GPU "))


def prepare_model_store(settings: ServingSettings, versions: list[int]) -> dict[int, str]:
    """Copy each version's verified .mar into TorchServe's own model store directory.

    Copies, not links: TorchServe resolves archives inside its model store, and a copy
    keeps a running server independent of later changes to the store.
    """
    store = ModelStore(settings.store_root, settings.model_name)
    target = settings.torchserve_dir / "model-store"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    mar_files = {}
    for version in versions:
        artifact = store.record(version).artifacts["torchserve_mar"]
        source = store.version_dir(version) / artifact.path
        name = f"{settings.model_name}.{version}.mar"
        shutil.copyfile(source, target / name)
        expected = artifact.files[artifact.path]
        if sha256_file(target / name) != expected:
            raise ServerStartError(f"{source}: SHA-256 does not match the manifest; run `make verify`")
        mar_files[version] = name
    return mar_files


def start(settings: ServingSettings) -> ServerRecord:
    """Write config.properties, launch the frontend; returns at once (see ``wait_until_ready``)."""
    store = ModelStore(settings.store_root, settings.model_name)
    versions = select_versions(store, settings.versions)
    mar_files = prepare_model_store(settings, versions)
    java = find_java()
    home = settings.torchserve_dir
    config = TorchServeConfig(
        model_name=settings.model_name,
        mar_files=mar_files,
        model_store=str(home / "model-store"),
        host=settings.host,
        inference_port=settings.ts_inference_port,
        management_port=settings.ts_management_port,
        metrics_port=settings.ts_metrics_port,
        grpc_inference_port=settings.ts_grpc_inference_port,
        grpc_management_port=settings.ts_grpc_management_port,
        workers=settings.ts_workers,
        batch_size=settings.ts_batch_size,
        max_batch_delay_ms=settings.ts_max_batch_delay_ms,
        response_timeout_s=settings.ts_response_timeout_s,
        gpus=detect_gpus(),
        token_auth=settings.ts_token_auth,
        token_expiration_min=settings.ts_token_expiration_min,
    )
    config_path = home / "config.properties"
    home.mkdir(parents=True, exist_ok=True)
    config_path.write_text(render(config))
    settings.key_file.unlink(missing_ok=True)
    ts_home = Path(ts.__file__).resolve().parent.parent
    command = [
        java.executable,
        f"-Dmodel_server_home={ts_home}",
        "-cp",
        f".:{ts_home / 'ts' / 'frontend' / '*'}",
        "org.pytorch.serve.ModelServer",
        "--python",
        sys.executable,
        "-f",
        str(config_path),
        "-s",
        config.model_store,
        "-ncs",
    ]
    environment = dict(os.environ)
    environment.update(
        LOG_LOCATION=str(home / "logs"),
        METRICS_LOCATION=str(home / "logs"),
        TEMP=str(home / "tmp"),
    )
    if settings.threads:
        environment.update(OMP_NUM_THREADS=str(settings.threads), MKL_NUM_THREADS=str(settings.threads))
    (home / "tmp").mkdir(exist_ok=True)
    info = {
        "implementation": f"TorchServe {_torchserve_version()} (Java {java.major} from {java.origin})",
        "versions": versions,
        "gpus": config.gpus,
        "token_auth": settings.ts_token_auth,
        "endpoints": vars(endpoints(settings)),
        "config": str(config_path),
    }
    return start_server(
        NAME,
        command,
        run_dir=settings.run_dir,
        log_file=home / "torchserve.log",
        cwd=home,
        env=environment,
        info=info,
    )


def _torchserve_version() -> str:
    return (Path(ts.__file__).parent / "version.txt").read_text().strip()


def token_source(settings: ServingSettings) -> TokenSource | None:
    if not settings.ts_token_auth:
        return None
    return TokenSource(settings.key_file, endpoints(settings).management)


def version_states(settings: ServingSettings) -> dict[str, str]:
    """Per loaded version, READY when at least one worker is ready, else the workers' states."""
    return {
        version: "READY" if "READY" in workers else ",".join(workers) or "NO WORKERS"
        for version, workers in model_status(settings).items()
    }


def model_status(settings: ServingSettings) -> dict[str, list[str]]:
    """Per loaded version, the states of its workers (e.g. ``{"1": ["READY"]}``)."""
    tokens = token_source(settings)
    headers = tokens.management_header() if tokens else {}
    status, body = request_json(
        f"{endpoints(settings).management}/models/{settings.model_name}/all", headers=headers, timeout=5.0
    )
    if status != 200 or not isinstance(body, list):
        raise ServerStartError(f"management API answered {status}: {body}")
    return {str(entry["modelVersion"]): [worker["status"] for worker in entry["workers"]] for entry in body}


def _startup_problem(log: Path) -> list[str]:
    """Empty while startup looks healthy; else the worker's traceback and TorchServe's verdict."""
    fatal = tail(log, 5, _FATAL_PATTERNS)
    if not fatal:
        return []
    time.sleep(1.0)  # the worker's traceback is still being flushed into the log
    lines = tail(log, 400)
    starts = [index for index, line in enumerate(lines) if "MODEL_LOG - Traceback" in line]
    traceback = []
    if starts:
        traceback = [
            line.split("MODEL_LOG - ", 1)[1]
            for line in lines[starts[0] : starts[0] + 80]
            if "MODEL_LOG - " in line
        ]
    verdict = list(dict.fromkeys(line.split(" - ", 1)[-1] for line in tail(log, 5, _FATAL_PATTERNS)))
    return ["worker traceback:", *traceback, "TorchServe:", *verdict] if traceback else verdict


def wait_until_ready(settings: ServingSettings, server: ServerRecord, timeout_s: float) -> dict[str, str]:
    """Poll until every loaded version has a READY worker; fail fast on worker errors."""
    log = Path(server.log)
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if not process_group_alive(server.pid):
            raise ServerStartError("TorchServe exited during startup:\n" + "\n".join(tail(log, 25)))
        problem = _startup_problem(log)
        if problem:
            raise ServerStartError(
                "TorchServe could not start a model worker (it would otherwise leave requests hanging):\n"
                + "\n".join(problem)
                + f"\nFull log: {log}"
            )
        try:
            versions = version_states(settings)
            if versions and all(state == "READY" for state in versions.values()):
                return versions
            last_error = f"workers {versions}"
        except (OSError, TokenError, ServerStartError) as exc:
            last_error = str(exc)
        time.sleep(0.5)
    raise ServerStartError(
        f"TorchServe not ready within {timeout_s:.0f}s ({last_error}); last log lines:\n"
        + "\n".join(tail(log, 20))
    )
