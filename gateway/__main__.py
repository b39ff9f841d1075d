"""``python -m gateway``: serve the app with granian (default) or gunicorn, never Flask's development server.

Configuration comes from ``GATEWAY_*`` variables (see :mod:`gateway.settings`); command-line overrides
are written back into the environment so that every worker process reads the same settings. The
launcher prepares prometheus_client's multiprocess directory *before* any worker imports
prometheus_client and builds one app per worker process (so connections and channels are per worker).
Both servers stop gracefully on SIGTERM: stop accepting, finish in-flight requests (up to
``graceful_timeout_s``), then each worker drains its batch queues and closes its backends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.settings import ENV_PREFIX, Settings, SettingsError

__all__ = ["GatewayServer", "main", "prepare_metrics_dir"]


def prepare_metrics_dir(settings: Settings) -> Path:
    """A fresh, empty PROMETHEUS_MULTIPROC_DIR, exported (stale files would double-count)."""
    if settings.metrics_dir is not None:
        path = settings.metrics_dir
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def _child_exit(server: Any, worker: Any) -> None:
    from gateway.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def _worker_exit(server: Any, worker: Any) -> None:
    from gateway.wsgi import close_worker

    served = getattr(worker, "wsgi", None)
    app = getattr(served, "app", served)  # the Flask app inside gateway.wsgi.CompleteBodies
    if app is not None and "gateway" in getattr(app, "extensions", {}):
        close_worker(app)


class GatewayServer(BaseApplication):
    """Gunicorn (``GATEWAY_SERVER=gunicorn``) configured from :class:`Settings`; each worker calls
    ``create_app`` after the fork."""

    def __init__(
        self,
        settings: Settings,
        factory: Callable[[Settings], Any] | None = None,
        cleanup: Path | None = None,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.cleanup = cleanup
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options = {
            "bind": [s.bind],
            "workers": s.workers,
            "worker_class": s.worker_class,
            "threads": s.threads,
            "timeout": s.worker_timeout_s,
            "graceful_timeout": s.graceful_timeout_s,
            "keepalive": s.keepalive_s,
            "loglevel": s.log_level,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "mnist-gateway",
            "preload_app": False,
            "child_exit": _child_exit,
            "worker_exit": _worker_exit,
            "on_exit": self._on_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def _on_exit(self, server: Any) -> None:
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)

    def load(self) -> Any:
        if self.factory is not None:
            return self.factory(self.settings)
        from gateway.app import create_app
        from gateway.wsgi import log_to_stderr, serve, start_grpc

        log_to_stderr(self.settings.log_level)
        app = create_app(self.settings)
        start_grpc(app, self.settings)
        return serve(app, self.settings)


def grpc_port_problem(bind: str) -> str:
    """Why the gRPC ingress cannot have ``bind``, or "". The workers share the port with SO_REUSEPORT,
    which would also let them share it with an unrelated process: so the launcher checks it is free."""
    if not bind:
        return ""
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        return f"GATEWAY_GRPC_BIND={bind!r} is not host:port"
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host.strip("[]") or "127.0.0.1", int(port)))
        except OSError as exc:
            return (
                f"GATEWAY_GRPC_BIND {bind} is not available ({exc.strerror}); "
                "choose another port, or set GATEWAY_GRPC_BIND= (empty) to turn the gRPC ingress off"
            )
    return ""


def export_settings(settings: Settings) -> None:
    """Write ``settings`` into ``GATEWAY_*`` variables: granian's workers build their app from them."""
    for field in fields(settings):
        value = getattr(settings, field.name)
        if value is None:
            text = ""
        elif isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        os.environ[ENV_PREFIX + field.name.upper()] = text


def run_granian(settings: Settings) -> None:
    """granian's WSGI interface: a Rust HTTP front end (async accept and parsing) handing complete
    requests to ``settings.threads`` Python threads per worker process."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    host, _, port = settings.bind.rpartition(":")
    export_settings(settings)
    print(
        f"gateway: {settings.workers} worker(s) x {settings.threads} threads: many threads on purpose, so a "
        "client sending its body slowly parks one instead of starving the others (granian warns about "
        "the count below; GATEWAY_THREADS sets it)",
        file=sys.stderr,
        flush=True,
    )
    Server(
        "gateway.wsgi:app_from_env",
        address=host.strip("[]") or "127.0.0.1",
        port=int(port),
        interface=Interfaces.WSGI,
        factory=True,
        workers=settings.workers,
        blocking_threads=settings.threads,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_read_timeout_s * 1000)),
        log_level=LogLevels(settings.log_level.lower()),
        workers_kill_timeout=settings.graceful_timeout_s,
        respawn_failed_workers=True,
    ).serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--bind", help="override GATEWAY_BIND (host:port)")
    parser.add_argument("--workers", type=int, help="override GATEWAY_WORKERS")
    parser.add_argument("--routing-file", type=Path, help="override GATEWAY_ROUTING_FILE")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    overrides = {
        key: value
        for key, value in (
            ("bind", args.bind),
            ("workers", args.workers),
            ("routing_file", args.routing_file),
        )
        if value is not None
    }
    settings = settings.with_overrides(**overrides)
    problem = grpc_port_problem(settings.grpc_bind)
    if problem:
        print(f"gateway: {problem}", file=sys.stderr)
        return 2
    metrics_dir = prepare_metrics_dir(settings)
    cleanup = metrics_dir if settings.metrics_dir is None else None
    if settings.server == "gunicorn":
        GatewayServer(settings, cleanup=cleanup).run()
        return 0
    try:
        run_granian(settings)
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
