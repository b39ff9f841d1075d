"""WSGI entry: ``granian --interface wsgi --factory gateway.wsgi:app_from_env`` (what ``python -m gateway``
runs) or ``gunicorn 'gateway.wsgi:app_from_env()'`` for people who run a server themselves.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory first when running several workers, or use
``python -m gateway``, which does that and the rest of the configuration from ``GATEWAY_*`` settings.
"""

from __future__ import annotations

from multiprocessing import util

from flask import Flask

from gateway.app import create_app
from gateway.settings import Settings

__all__ = ["app_from_env"]


def app_from_env() -> Flask:
    """The app configured from ``GATEWAY_*`` environment variables (called once in each worker)."""
    app = create_app(Settings.from_env())
    # granian's workers are multiprocessing children, which run these finalizers (not atexit) when
    # they stop after their graceful shutdown: drain batch queues, close connections.
    util.Finalize(app, app.extensions["gateway"].close, exitpriority=10)
    return app
