"""Settings of the local model servers, from ``SERVING_*`` environment variables or flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from model_store import MODEL_NAME, default_root

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = REPO_ROOT / "run"
ENV_PREFIX = "SERVING_"
LOOPBACK = "127.0.0.1"
PORT_FIELDS = (
    "tf_grpc_port",
    "tf_rest_port",
    "ts_inference_port",
    "ts_management_port",
    "ts_metrics_port",
    "ts_grpc_inference_port",
    "ts_grpc_management_port",
    "triton_http_port",
    "triton_grpc_port",
    "triton_metrics_port",
    "prometheus_port",
)
"""Every port ServingSettings holds (for callers that pick free ports)."""


@dataclass(frozen=True)
class ServingSettings:
    """Where and how ``python -m serving up`` runs TorchServe and TF Serving."""

    store_root: Path = field(default_factory=default_root)
    """Model store root (TF Serving's base path is ``<store_root>/<model>``)."""
    model_name: str = MODEL_NAME
    run_dir: Path = DEFAULT_RUN_DIR
    """Generated configs, logs, PID files and TorchServe's key file live here."""
    host: str = LOOPBACK
    """Address the inference endpoints bind to; management endpoints always bind to 127.0.0.1."""
    versions: str = "latest"
    """Which versions both servers load: "latest", "all", or a comma-separated list."""

    tf_grpc_port: int = 8500
    tf_rest_port: int = 8501
    tf_batching: bool = False
    """TF Serving's server-side batching (off by default, like TorchServe's batchSize=1)."""
    threads: int = 0
    """Intra-op threads for both frameworks (0: each framework's default)."""

    ts_inference_port: int = 8080
    ts_management_port: int = 8081
    ts_metrics_port: int = 8082
    ts_grpc_inference_port: int = 7070
    ts_grpc_management_port: int = 7071
    ts_workers: int = 1
    """TorchServe workers per model version (per GPU when GPUs are present)."""
    ts_batch_size: int = 1
    ts_max_batch_delay_ms: int = 5
    ts_response_timeout_s: int = 60
    ts_token_auth: bool = True
    """TorchServe token authorization; turn off only for benchmarks on a closed machine."""
    ts_token_expiration_min: int = 60

    triton_http_port: int = 8100
    triton_grpc_port: int = 8101
    triton_metrics_port: int = 8102
    triton_dynamic_batching: bool = False
    """Triton's dynamic batcher (off by default, like the other servers' batching)."""
    triton_max_batch: int = 256
    """Triton's max_batch_size: the most images one request may carry, and one batch's cap."""
    triton_max_queue_delay_us: int = 1000
    """With dynamic batching on: how long the batcher may hold a request to fill a batch."""
    triton_venv: Path = REPO_ROOT / "build" / "triton-venv"
    """Triton's own environment (nvidia-pytriton, CPU torch), built at first use."""
    triton_python: str = ""
    """Python that builds the Triton environment (shared libpython; default: the running one's base)."""

    prometheus: bool = True
    """Start Prometheus (where its binary is installed) after the servers, scraping them and the gateway."""
    prometheus_binary: str = "prometheus"
    """The Prometheus server: a name looked up on PATH, or a path (Debian's package: /usr/bin/prometheus)."""
    prometheus_port: int = 9090
    """Prometheus's web UI and HTTP API, always on 127.0.0.1."""
    prometheus_gateway: str = "127.0.0.1:8000"
    """The gateway(s) Prometheus scrapes at /metrics: host:port, comma-separated (``make gateway``'s bind)."""
    prometheus_scrape_interval_s: float = 5.0
    prometheus_evaluation_interval_s: float = 15.0
    """How often the recording and alert rules of k8s/monitoring/rules.yml are evaluated."""
    prometheus_retention: str = "2d"

    startup_timeout_s: float = 120.0
    """How long ``up`` waits for each server to report the model ready."""

    def __post_init__(self) -> None:
        # Servers run with their own working directories: relative paths would point elsewhere.
        for name in ("store_root", "run_dir", "triton_venv"):
            object.__setattr__(self, name, Path(getattr(self, name)).expanduser().resolve())

    @property
    def torchserve_dir(self) -> Path:
        return self.run_dir / "torchserve"

    @property
    def tfserving_dir(self) -> Path:
        return self.run_dir / "tfserving"

    @property
    def triton_dir(self) -> Path:
        return self.run_dir / "triton"

    @property
    def prometheus_dir(self) -> Path:
        return self.run_dir / "prometheus"

    @property
    def key_file(self) -> Path:
        """Where TorchServe writes its keys (it writes key_file.json into its working directory)."""
        return self.torchserve_dir / "key_file.json"

    @property
    def model_base_path(self) -> Path:
        return self.store_root / self.model_name


def _convert(raw: str, kind: Any) -> Any:
    if kind in (bool, "bool"):
        lowered = raw.strip().lower()
        if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
            raise ValueError(f"expected a boolean, got {raw!r}")
        return lowered in {"1", "true", "yes", "on"}
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (Path, "Path"):
        return Path(raw).expanduser().resolve()
    return raw


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> ServingSettings:
    """Defaults, then ``SERVING_<FIELD>`` variables, then explicit overrides (e.g. from flags)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for item in fields(ServingSettings):
        raw = environ.get(ENV_PREFIX + item.name.upper())
        if raw is not None:
            try:
                values[item.name] = _convert(raw, item.type)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{item.name.upper()}={raw!r}: {exc}") from exc
    values.update({name: value for name, value in overrides.items() if value is not None})
    return replace(ServingSettings(), **values)
