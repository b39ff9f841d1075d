"""Typed gateway settings, read from environment variables with the one prefix ``GATEWAY_``.

Each field of :class:`Settings` is set by ``GATEWAY_<FIELD NAME IN UPPER CASE>``; lists are
comma-separated, booleans accept 1/0, true/false, yes/no, on/off. Nothing is read at import time:
call :meth:`Settings.from_env` where the process starts. The per-model routing policy lives in a
separate YAML file (:mod:`gateway.routing`) so that it can change without a restart.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "Settings", "SettingsError"]

ENV_PREFIX = "GATEWAY_"
# Where `make serve` has TorchServe write its keys (serving's run directory, ``run/`` in the checkout).
DEFAULT_KEY_FILE = Path(__file__).resolve().parents[1] / "run" / "torchserve" / "key_file.json"


class SettingsError(ValueError):
    """An environment variable holds a value its field cannot take (the message names it)."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway process needs; addresses come only from here (no request picks a host)."""

    bind: str = "127.0.0.1:8000"
    """Address the server listens on, ``host:port``."""
    grpc_bind: str = "127.0.0.1:8001"
    """gRPC ingress (Open Inference Protocol V2 and TF Serving's PredictionService), ``host:port``;
    empty turns it off. Every worker serves it (one port, shared)."""
    grpc_threads: int = 16
    """Threads per worker for gRPC calls."""
    server: str = "granian"
    """WSGI server: ``granian`` (chosen by ``make bench-gateway``: least CPU per request here, and its
    Rust front end reads requests asynchronously) or ``gunicorn`` (kept for comparison)."""
    workers: int = 2
    """Worker processes."""
    worker_class: str = "gthread"
    """Gunicorn worker class (``gthread`` or ``sync``); gunicorn only."""
    threads: int = 256
    """Python threads per worker (granian's blocking threads, gunicorn's threads). A request holds one
    while its body arrives, then while it runs; a client sending its body slowly parks one (no CPU),
    so there must be more threads than slow senders. Both servers start threads on demand: idle
    ones cost nothing, and only as many run at once as there are requests."""
    worker_timeout_s: int = 30
    """Gunicorn kills a worker silent for this long; gunicorn only."""
    graceful_timeout_s: int = 30
    """On SIGTERM, in-flight requests get this long to finish."""
    keepalive_s: int = 5
    """Client keep-alive idle time (gunicorn; granian keeps connections until the client closes)."""
    header_read_timeout_s: float = 10.0
    """A client must send its request headers within this time (granian), so slow clients cannot hold
    connections open for free."""
    body_read_timeout_s: float = 10.0
    """A body that took longer than this to arrive is refused (408) instead of served late."""
    deadline_s: float = 3.0
    """Whole-request deadline: no upstream call (first try, failover or retry) starts after it."""
    attempt_timeout_s: float = 1.5
    """Upper bound for one upstream attempt, so that a hanging backend leaves time to fail over."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest accepted request body (413 above)."""
    max_instances: int = 256
    """Most images in one request (413 above)."""
    max_json_depth: int = 8
    """Deepest nesting of JSON arrays/objects accepted (400 deeper)."""
    max_image_side: int = 1024
    """Largest width or height of an uploaded image (it is resized to 28x28)."""
    max_inflight: int = 64
    """Requests one worker handles at once before answering 429."""
    api_keys: tuple[str, ...] = ()
    """Accepted client API keys (``Authorization: Bearer`` or ``X-API-Key``); empty means no auth."""
    admin_token: str = ""
    """Bearer token for ``/admin/*``; empty disables the admin endpoints."""
    default_model: str = "mnist"
    """Model served by the short ``POST /predict`` endpoint."""
    routing_file: Path | None = None
    """YAML routing file; without one, both embedded backends serve every model in the store."""
    routing_poll_s: float = 2.0
    """How often a worker looks at the routing file's modification time."""
    model_store: Path | None = None
    """Model store root for the embedded backends (default: the store's own default root)."""
    tfserving_rest_url: str = "http://127.0.0.1:8501"
    """TF Serving REST base URL."""
    tfserving_grpc_target: str = "127.0.0.1:8500"
    """TF Serving gRPC ``host:port``."""
    torchserve_rest_url: str = "http://127.0.0.1:8080"
    """TorchServe inference REST base URL (never the management port)."""
    torchserve_grpc_target: str = "127.0.0.1:7070"
    """TorchServe gRPC inference ``host:port``."""
    v2_rest_url: str = "http://127.0.0.1:8100"
    """An Open Inference Protocol (V2) server's REST base URL, for ``v2-rest`` (default: where
    ``make serve`` runs Triton)."""
    v2_grpc_target: str = "127.0.0.1:8101"
    """The same server's gRPC ``host:port``: ``v2-grpc``."""
    torchserve_key_file: Path = DEFAULT_KEY_FILE
    """TorchServe's key file (re-read when it changes or when TorchServe rejects the key)."""
    torchserve_management_url: str = "http://127.0.0.1:8081"
    """TorchServe's management API, used only to renew the inference key before it expires;
    empty where the gateway cannot reach it (e.g. Kubernetes, where the key arrives via a Secret)."""
    torchserve_token: str = ""
    """Static inference token; overrides the key file (empty: use the key file if it exists)."""
    backend_max_response_bytes: int = 4 * 1024 * 1024
    """Largest backend answer read over REST (502 beyond; a valid one for 256 images is ~40 KB)."""
    health_ttl_s: float = 1.0
    """How long a backend's ready/not-ready verdict is reused."""
    health_timeout_s: float = 0.5
    """Deadline of one readiness probe."""
    breaker_failures: int = 5
    """A backend's circuit opens after this many failures in a row (0 turns breakers off) ..."""
    breaker_error_ratio: float = 0.5
    """... or when this share of its calls failed in the last ``breaker_window_s``,"""
    breaker_min_calls: int = 20
    """counting only windows with at least this many calls."""
    breaker_window_s: float = 10.0
    breaker_open_s: float = 5.0
    """An open circuit fails calls at once for this long, then lets one probe call through."""
    shadow_max_inflight: int = 8
    """Shadow calls in flight per worker; more are dropped, never queued."""
    embedded_threads: int = 1
    """Intra-op threads for the embedded TensorFlow / torch backends."""
    warmup: bool = True
    """Load the embedded models when a worker starts instead of on the first request."""
    metrics_dir: Path | None = None
    """prometheus_client multiprocess directory (``python -m gateway`` makes a fresh one if unset)."""
    log_level: str = "info"
    """The server's and the gateway's own log level (debug, info, warning, error)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by ``GATEWAY_*`` variables; unknown ``GATEWAY_*`` names are an error."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = sorted(
            key for key in env if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX) :].lower() not in known
        )
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name in known:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = _convert(key, env[key], hints[name])
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def validate(self) -> None:
        positive = (
            "workers",
            "threads",
            "grpc_threads",
            "deadline_s",
            "attempt_timeout_s",
            "header_read_timeout_s",
            "body_read_timeout_s",
            "max_body_bytes",
            "max_instances",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if not 0 < self.breaker_error_ratio <= 1:
            raise SettingsError(f"{ENV_PREFIX}BREAKER_ERROR_RATIO must be in (0, 1]")
        if min(self.breaker_window_s, self.breaker_open_s) <= 0 or self.breaker_failures < 0:
            raise SettingsError(
                f"{ENV_PREFIX}BREAKER_WINDOW_S and _OPEN_S must be positive, _FAILURES 0 or more"
            )
        if self.server not in ("granian", "gunicorn"):
            raise SettingsError(f"{ENV_PREFIX}SERVER must be granian or gunicorn, not {self.server!r}")
        if self.worker_class not in ("gthread", "sync"):
            raise SettingsError(
                f"{ENV_PREFIX}WORKER_CLASS must be gthread or sync, not {self.worker_class!r}"
            )


def _convert(key: str, raw: str, hint: Any) -> Any:
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint, optional = args[0], True
    text = raw.strip()
    if optional and text == "":
        return None
    try:
        if hint is bool:
            return _parse_bool(text)
        if hint in (int, float, str):
            return hint(text)
        if hint is Path:
            return Path(text).expanduser()
        if typing.get_origin(hint) is tuple:
            return tuple(item.strip() for item in text.split(",") if item.strip())
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r}: {exc}") from exc
    raise SettingsError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")
