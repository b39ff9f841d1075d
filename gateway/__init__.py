"""The Flask gateway: one API in front of TF Serving and TorchServe.

``create_app(settings)`` builds the WSGI app; ``python -m gateway`` serves it with granian (or gunicorn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.settings import Settings

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["Settings", "create_app"]


def create_app(settings: Settings | None = None, **kwargs: Any) -> Flask:
    """See :func:`gateway.app.create_app` (imported lazily so ``import gateway`` stays light)."""
    from gateway.app import create_app as factory

    return factory(settings, **kwargs)
