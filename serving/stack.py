"""Start the whole local stack on free loopback ports, and stop every process of it.

TorchServe, TF Serving (the official binary when installed, else the project's named stand-in), Triton,
the gateway (``python -m gateway`` under granian) and the null endpoints start through
:func:`serving.lifecycle.up`, as ``python -m serving up`` starts the servers, so each component runs
as its own process group with a record in ``<run_dir>/pids`` and :meth:`LocalStack.stop` ends whole
groups (TorchServe's Python workers, the gateway's workers) and then checks that nothing is left.
A component that cannot start is reported with its reason; the comparison then skips its targets.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import registry
from model_store import MODEL_NAME
from serving.cpu import Pinning, pin_group
from serving.endpoints import Endpoints
from serving.lifecycle import SERVERS, CommandLauncher, Launcher, up
from serving.ports import free_port
from serving.process import ServerRecord, all_records, group_members, process_group_alive, stop_server
from serving.settings import LOOPBACK, PORT_FIELDS, ServingSettings, settings_from_env
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
        **{
            f"GATEWAY_{b.address.upper()}": endpoints.of_backend(b.name)
            for b in registry.BACKENDS
            if b.address
        },
        "GATEWAY_TORCHSERVE_KEY_FILE": endpoints.torchserve_key_file,
        "GATEWAY_TORCHSERVE_MANAGEMENT_URL": endpoints.torchserve_management_url,
        "GATEWAY_GRACEFUL_TIMEOUT_S": "5",
        "GATEWAY_LOG_LEVEL": "warning",
        **({"GATEWAY_SERVER": options.gateway_server} if options.gateway_server else {}),
    }


def write_routing(path: Path) -> None:
    """Every backend reachable by explicit choice (``X-Gateway-Backend``); no failover, no shadow."""
    names = registry.BACKEND_NAMES
    backends = {name: (1 if name == names[0] else 0) for name in names}
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
    """Start the components and wait until each is ready (:func:`serving.lifecycle.up`); never raises
    for one component: one that fails is reported and left out."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    serving = _serving_settings(options)
    gateway_port, null_ports = free_port(), (free_port(), free_port())
    stack = LocalStack(serving, _endpoints(serving, gateway_port, null_ports))
    cpus = options.pinning.servers if options.pinning and options.pinning.active else None
    launchers: dict[str, Launcher] = {
        name: launcher for name, launcher in SERVERS.items() if name in options.components
    }
    if NULLSERVER in options.components:
        command = [sys.executable, "-m", "serving.nullserver", "--host", LOOPBACK]
        command += ["--rest-port", str(null_ports[0]), "--grpc-port", str(null_ports[1])]
        implementation = "serving null endpoints (asyncio HTTP/1.1, grpcio)"
        null_url = f"{stack.endpoints.null_url}/"
        launchers[NULLSERVER] = CommandLauncher(
            NULLSERVER, command, _child_environment({}), null_url, implementation, any_status=True
        )
    if GATEWAY in options.components:
        routing = options.run_dir / "routing.yaml"
        write_routing(routing)
        env = gateway_environment(stack.endpoints, options, f"{LOOPBACK}:{gateway_port}", routing)
        stack.gateway_settings = {k: v for k, v in env.items() if "KEY" not in k}
        implementation = "mnist-serving-gateway (Flask; under granian unless GATEWAY_SERVER says gunicorn)"
        ready = f"{stack.endpoints.gateway_url}/readyz"
        launchers[GATEWAY] = CommandLauncher(
            GATEWAY, [sys.executable, "-m", "gateway"], _child_environment(env), ready, implementation
        )
    # The servers boot on every core (twice as fast as on the servers' cores alone, measured) and are
    # pinned once ready: every thread of each process group now; what they start later inherits it.
    started = up(serving, launchers, say, timeout_s=options.start_timeout_s)
    stack.records, stack.failures = started.records, started.failures
    if cpus is not None:
        for record in stack.records.values():
            pin_group(record.pid, cpus)
    return stack
