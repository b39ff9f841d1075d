"""WSGI entry: ``granian --interface wsgi --factory gateway.wsgi:app_from_env`` (what ``python -m gateway``
runs) or ``gunicorn 'gateway.wsgi:app_from_env()'`` for people who run a server themselves.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory first when running several workers, or use
``python -m gateway``, which does that and the rest of the configuration from ``GATEWAY_*`` settings.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Callable
from multiprocessing import util
from typing import Any

from flask import Flask

from gateway.app import create_app
from gateway.calls import REQUEST_ID_HEADER, new_request_id, valid_request_id
from gateway.errors import (
    GatewayError,
    InvalidInput,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedTransferCoding,
    envelope,
)
from gateway.jsonio import dumps
from gateway.settings import Settings

__all__ = ["CompleteBodies", "app_from_env", "close_worker", "log_to_stderr", "serve", "start_grpc"]

log = logging.getLogger("gateway")


_CHUNK = 64 * 1024


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The whole body, chunked or not; PayloadTooLarge as soon as it passes ``limit`` bytes.

    Both servers end ``wsgi.input`` at the body's end (a declared length or the last chunk)."""
    coding = environ.get("HTTP_TRANSFER_ENCODING")
    if coding is not None and coding.replace(" ", "").lower() != "chunked":
        raise UnsupportedTransferCoding(f"Transfer-Encoding {coding[:60]!r}; only 'chunked' is understood")
    declared = environ.get("CONTENT_LENGTH") or ""
    length = int(declared) if declared.isdigit() else None
    if length is not None and length > limit:
        raise PayloadTooLarge.declared(length, limit)
    stream = environ["wsgi.input"]
    if coding is None and length is not None:  # both servers read up to the length asked in one call
        body: bytes = stream.read(length)
        if len(body) < length:
            # granian ends the stream quietly when a client stops early; never parse half a body.
            raise InvalidInput(f"the body ended after {len(body)} of the {length} bytes declared")
        return body
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(error: GatewayError, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    request_id = valid_request_id(environ.get("HTTP_X_REQUEST_ID", "")) or new_request_id()
    body = dumps(envelope(error, request_id)) + b"\n"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        (REQUEST_ID_HEADER, request_id),
        ("Connection", "close"),  # the rest of an oversized body is not read
    ]
    start_response(f"{error.status} {error.code.replace('_', ' ').title()}", headers)
    return [body]


class CompleteBodies:
    """Reads each request's whole body before the app runs, and hands the app's answer back as one buffer.

    - A body over ``max_body_bytes`` is refused with 413 as soon as the limit is passed, whether it is
      declared by Content-Length or chunked: the app never sees a truncated body (Werkzeug alone
      would cut a chunked body at the limit and parse the rest).
    - A body that took longer than ``body_read_timeout_s`` to arrive gets 408, not a late answer.
      The wait parks this thread without using CPU; the servers cannot interrupt it, which is why
      workers have many threads (see ``Settings.threads``).
    - Every answer here is small and complete before it is sent: handed a list, granian writes it in
      one call, while an iterator makes it come back into Python for each chunk and for ``close``.
    """

    def __init__(self, app: Flask, max_body_bytes: int, body_read_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout_s = body_read_timeout_s

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("REQUEST_METHOD") in ("POST", "PUT", "PATCH"):
            started = time.monotonic()
            try:
                body = _read_body(environ, self.max_body_bytes)
            except GatewayError as error:
                return _refuse(error, environ, start_response)
            if time.monotonic() - started > self.body_read_timeout_s:
                late = RequestTimeout(
                    f"the request body took more than {self.body_read_timeout_s:g} s to arrive"
                )
                return _refuse(late, environ, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        answer = self.app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()


def serve(app: Flask, settings: Settings) -> CompleteBodies:
    """``app`` as the servers run it."""
    return CompleteBodies(app, settings.max_body_bytes, settings.body_read_timeout_s)


def log_to_stderr(level: str) -> None:
    """The ``gateway.*`` loggers write to this worker's stderr at ``level``, in the servers' own
    ``[LEVEL] ...`` style. Neither server sets up loggers other than its own, so without this only
    warnings would show (through logging's last-resort handler, without level or source)."""
    if any(getattr(handler, "gateway_worker", False) for handler in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(name)s: %(message)s"))
    handler.gateway_worker = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False


def close_worker(app: Flask) -> None:
    """Drain this worker's batch queues and close its backends; the line it logs at the end is how an
    operator (and the SIGTERM test) tells a worker that stopped gracefully from one that was killed."""
    app.extensions["gateway"].close()
    log.info("worker %d stopped gracefully: batch queues drained, backends closed", os.getpid())


def app_from_env() -> CompleteBodies:
    """The app configured from ``GATEWAY_*`` environment variables (called once in each worker)."""
    settings = Settings.from_env()
    log_to_stderr(settings.log_level)
    app: Flask = create_app(settings)
    # granian's workers are multiprocessing children, which run these finalizers (not atexit) when
    # they stop after their graceful shutdown: stop the gRPC server (its calls finish first), then
    # drain batch queues and close connections.
    util.Finalize(app, close_worker, args=(app,), exitpriority=10)
    start_grpc(app, settings)
    return serve(app, settings)


def start_grpc(app: Flask, settings: Settings) -> None:
    """This worker's gRPC ingress, stopped when the worker stops (``GATEWAY_GRPC_BIND`` empty: none)."""
    if not settings.grpc_bind:
        return
    from gateway.protocols.grpc_ingress import start_ingress

    server = start_ingress(app.extensions["gateway"], settings.grpc_bind, settings.grpc_threads)
    app.extensions["grpc_server"] = server
    util.Finalize(app, lambda: server.stop(settings.graceful_timeout_s).wait(), exitpriority=20)
