"""Start the whole local stack on free loopback ports, and stop every process of it.

TorchServe, TF Serving (the official binary when installed, else the project's named stand-in) and Triton
start through their launchers in ``serving``; the gateway (``python -m gateway`` under granian) and
the null endpoints start through the same ``serving.process.start_server``, so each component runs
as its own process group with a record in ``<run_dir>/pids`` and :meth:`LocalStack.stop` ends whole
groups (TorchServe's Python workers, the gateway's workers) and then checks that nothing is left.
A component that cannot start is reported with its reason; the comparison then skips its targets.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.backends import BACKEND_NAMES, BACKENDS
from loadtests.cpu import Pinning, pin_group, pinned
from loadtests.endpoints import Endpoints
from model_store import MODEL_NAME
from serving.errors import ServingError
from serving.ports import free_port
from serving.process import (
    ServerRecord,
    all_records,
    group_members,
    process_group_alive,
    start_server,
    stop_server,
    tail,
)
from serving.settings import LOOPBACK, PORT_FIELDS, REPO_ROOT, ServingSettings, settings_from_env
from serving.tfserving import launcher as tfserving
from serving.torchserve import launcher as torchserve
from serving.triton import launcher as triton

__all__ = ["LocalStack", "StackOptions", "gateway_environment", "start_stack"]

GATEWAY = "gateway"
NULLSERVER = "nullserver"
Say = Callable[[str], None]


@dataclass(frozen=True)
class StackOptions:
    store_root: Path
    run_dir: Path
    threads: int = 1
    """Intra-op threads of every framework (TorchServe's torch, TF Serving, the embedded backends)."""
    gateway_workers: int = 1
    gateway_threads: int = 256
    gateway_server: str | None = None
    """``GATEWAY_SERVER`` (granian or gunicorn); None keeps the gateway's default."""
    ts_workers: int = 1
    start_timeout_s: float = 180.0
    components: tuple[str, ...] = ("torchserve", "tfserving", "triton", GATEWAY, NULLSERVER)
    pinning: Pinning | None = None


@dataclass
class LocalStack:
    serving: ServingSettings
    endpoints: Endpoints
    records: dict[str, ServerRecord] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """Component -> why it is not running."""
    gateway_settings: dict[str, str] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.serving.run_dir

    def describe(self) -> dict[str, Any]:
        return {
            "started": {
                name: {"implementation": r.info.get("implementation", name), **_public(r.info)}
                for name, r in self.records.items()
            },
            "failed": dict(self.failures),
            "gateway": self.gateway_settings,
            "serving": {
                "threads": self.serving.threads,
                "ts_workers": self.serving.ts_workers,
                "ts_batch_size": self.serving.ts_batch_size,
                "ts_token_auth": self.serving.ts_token_auth,
                "tf_batching": self.serving.tf_batching,
                "versions": self.serving.versions,
            },
        }

    def stop(self) -> list[str]:
        """Stop every recorded component (whole process groups); returns what is still alive after."""
        for record in reversed(all_records(self.run_dir)):
            stop_server(self.run_dir, record.name, grace_s=15.0)
        leftovers = [
            f"{name} (pids {group_members(record.pid)})"
            for name, record in self.records.items()
            if process_group_alive(record.pid)
        ]
        shutil.rmtree(self.serving.torchserve_dir / "model-store", ignore_errors=True)
        return leftovers


def _public(info: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in info.items() if key not in ("config",)}


def gateway_environment(
    endpoints: Endpoints, options: StackOptions, bind: str, routing_file: Path
) -> dict[str, str]:
    """The gateway's ``GATEWAY_*`` settings for a benchmark: explicit routing only, no failover."""
    return {
        "GATEWAY_BIND": bind,
        "GATEWAY_GRPC_BIND": "",  # not measured yet; never the user's default port
        "GATEWAY_WORKERS": str(options.gateway_workers),
        "GATEWAY_THREADS": str(options.gateway_threads),
        "GATEWAY_ROUTING_FILE": str(routing_file),
        "GATEWAY_MODEL_STORE": str(options.store_root),
        "GATEWAY_EMBEDDED_THREADS": str(options.threads),
        **{f"GATEWAY_{e.address.upper()}": getattr(endpoints, e.endpoint) for e in BACKENDS if e.address},
        "GATEWAY_TORCHSERVE_KEY_FILE": endpoints.torchserve_key_file,
        "GATEWAY_TORCHSERVE_MANAGEMENT_URL": endpoints.torchserve_management_url,
        "GATEWAY_GRACEFUL_TIMEOUT_S": "5",
        "GATEWAY_LOG_LEVEL": "warning",
        **({"GATEWAY_SERVER": options.gateway_server} if options.gateway_server else {}),
    }


def write_routing(path: Path) -> None:
    """Every backend reachable by explicit choice (``X-Gateway-Backend``); no failover, no shadow."""
    backends = {name: (1 if name == BACKEND_NAMES[0] else 0) for name in BACKEND_NAMES}
    path.write_text(json.dumps({"models": {MODEL_NAME: {"backends": backends, "failover": False}}}, indent=2))


def _serving_settings(options: StackOptions) -> ServingSettings:
    ports: dict[str, Any] = {name: free_port() for name in PORT_FIELDS}
    return settings_from_env(
        store_root=options.store_root,
        run_dir=options.run_dir,
        host=LOOPBACK,
        threads=options.threads,
        ts_workers=options.ts_workers,
        startup_timeout_s=options.start_timeout_s,
        **ports,
    )


def _endpoints(serving: ServingSettings, gateway_port: int, null_ports: tuple[int, int]) -> Endpoints:
    ts = torchserve.endpoints(serving)
    return Endpoints(
        tfserving_rest_url=tfserving.rest_url(serving),
        tfserving_grpc_target=f"{serving.host}:{serving.tf_grpc_port}",
        torchserve_url=ts.inference,
        torchserve_grpc_target=ts.grpc_inference,
        torchserve_key_file=str(serving.key_file) if serving.ts_token_auth else "",
        torchserve_management_url=ts.management,
        triton_url=triton.http_url(serving),
        triton_grpc_target=f"{serving.host}:{serving.triton_grpc_port}",
        gateway_url=f"http://{LOOPBACK}:{gateway_port}",
        null_url=f"http://{LOOPBACK}:{null_ports[0]}",
        null_grpc_target=f"{LOOPBACK}:{null_ports[1]}",
    )


def _child_environment(extra: dict[str, str]) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    return {**base, "PYTHONUNBUFFERED": "1", **extra}


def start_stack(options: StackOptions, say: Say) -> LocalStack:
    """Start the components (in parallel) and wait until each is ready; never raises for one component."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    serving = _serving_settings(options)
    gateway_port, null_ports = free_port(), (free_port(), free_port())
    stack = LocalStack(serving, _endpoints(serving, gateway_port, null_ports))
    cpus = options.pinning.servers if options.pinning and options.pinning.active else None
    launchers = {"torchserve": torchserve, "tfserving": tfserving, "triton": triton}
    try:
        with pinned(cpus):
            for name, launcher in launchers.items():
                if name in options.components:
                    _start(stack, name, functools.partial(launcher.start, serving), launcher, say)
            if NULLSERVER in options.components:
                command = [sys.executable, "-m", "loadtests.nullserver", "--host", LOOPBACK]
                command += ["--rest-port", str(null_ports[0]), "--grpc-port", str(null_ports[1])]
                _start(stack, NULLSERVER, lambda: _launch(serving, NULLSERVER, command, {}), None, say)
            if GATEWAY in options.components:
                routing = options.run_dir / "routing.yaml"
                write_routing(routing)
                env = gateway_environment(stack.endpoints, options, f"{LOOPBACK}:{gateway_port}", routing)
                stack.gateway_settings = {k: v for k, v in env.items() if "KEY" not in k}
                command = [sys.executable, "-m", "gateway"]
                _start(stack, GATEWAY, lambda: _launch(serving, GATEWAY, command, env), None, say)
        _wait_all(stack, options, launchers, say)
        if cpus is not None:
            for record in stack.records.values():
                pin_group(record.pid, cpus)
    except BaseException:
        stack.stop()
        raise
    return stack


def _launch(serving: ServingSettings, name: str, command: list[str], env: dict[str, str]) -> ServerRecord:
    directory = serving.run_dir / name
    return start_server(
        name,
        command,
        run_dir=serving.run_dir,
        log_file=directory / f"{name}.log",
        cwd=REPO_ROOT,
        env=_child_environment(env),
        info={"implementation": _implementation(name), "command": command},
    )


def _implementation(name: str) -> str:
    if name == GATEWAY:
        return "mnist-serving-gateway (Flask; under granian unless GATEWAY_SERVER says gunicorn)"
    return "loadtests null endpoints (asyncio HTTP/1.1, grpcio)"


def _start(stack: LocalStack, name: str, launch: Callable[[], ServerRecord], launcher: Any, say: Say) -> None:
    try:
        if launcher is not None:
            launcher.check_ports(stack.serving)
        record = launch()
    except (ServingError, OSError, RuntimeError, ValueError) as exc:
        stack.failures[name] = f"could not start: {exc}"
        say(f"  {name}: could not start ({exc})")
        return
    stack.records[name] = record
    say(f"  started {record.info.get('implementation', name)} (pid {record.pid})")


def _wait_all(stack: LocalStack, options: StackOptions, launchers: dict[str, Any], say: Say) -> None:
    for name, record in list(stack.records.items()):
        started = time.monotonic()
        try:
            if name in launchers:
                launchers[name].wait_until_ready(stack.serving, record, options.start_timeout_s)
            elif name == GATEWAY:
                _wait_http(f"{stack.endpoints.gateway_url}/readyz", record, options.start_timeout_s)
            else:
                _wait_http(f"{stack.endpoints.null_url}/", record, options.start_timeout_s, any_status=True)
        except (ServingError, OSError, TimeoutError) as exc:
            stack.failures[name] = f"not ready: {exc}"
            say(f"  {name}: not ready ({str(exc).splitlines()[0]}); stopping it")
            stop_server(stack.run_dir, name)
            del stack.records[name]
            continue
        say(f"  {name}: ready ({time.monotonic() - started:.1f} s more)")


def _wait_http(url: str, record: ServerRecord, timeout_s: float, any_status: bool = False) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if not process_group_alive(record.pid):
            raise ServingError(f"{record.name} exited:\n" + "\n".join(tail(Path(record.log), 15)))
        try:
            with urllib.request.urlopen(url, timeout=2.0) as answer:  # nosec B310  # readiness URL of a server this process started
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if any_status:
                return
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready within {timeout_s:.0f} s ({last})")
