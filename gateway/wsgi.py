"""WSGI entry: ``granian --interface wsgi --factory gateway.wsgi:app_from_env`` (what ``python -m gateway``
runs) or ``gunicorn 'gateway.wsgi:app_from_env()'`` for people who run a server themselves.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory first when running several workers, or use
``python -m gateway``, which does that and the rest of the configuration from ``GATEWAY_*`` settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from multiprocessing import util
from typing import Any

from flask import Flask

from gateway.app import create_app
from gateway.settings import Settings

__all__ = ["app_from_env", "buffered"]

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def buffered(app: Wsgi) -> Wsgi:
    """The app's answer as one list of bytes, its ``close()`` (Flask's teardown) already run.

    Every answer here is small and complete before it is sent; handed a list, granian writes it in
    one call, while an iterator makes it come back into Python for each chunk and for ``close``."""

    def call(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()

    return call


def app_from_env() -> Wsgi:
    """The app configured from ``GATEWAY_*`` environment variables (called once in each worker)."""
    app: Flask = create_app(Settings.from_env())
    # granian's workers are multiprocessing children, which run these finalizers (not atexit) when
    # they stop after their graceful shutdown: drain batch queues, close connections.
    util.Finalize(app, app.extensions["gateway"].close, exitpriority=10)
    return buffered(app)
