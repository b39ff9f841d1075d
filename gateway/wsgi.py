"""Gunicorn entry for people who run gunicorn themselves: ``gunicorn 'gateway.wsgi:app_from_env()'``.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory first when running several workers, or use
``python -m gateway``, which does that and the rest of the configuration from ``GATEWAY_*`` settings.
"""

from __future__ import annotations

from flask import Flask

from gateway.app import create_app
from gateway.settings import Settings

__all__ = ["app_from_env"]


def app_from_env() -> Flask:
    """The app configured from ``GATEWAY_*`` environment variables (called by gunicorn in each worker)."""
    return create_app(Settings.from_env())
