"""The Flask gateway: one API in front of TF Serving and TorchServe.

``create_app(settings)`` builds the WSGI app; ``python -m gateway`` serves it with granian (or gunicorn).
Importing the package loads nothing else, so that ``gateway.registry`` is as light as it looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from gateway.settings import Settings

__all__ = ["Settings", "create_app"]


def create_app(settings: Settings | None = None, **kwargs: Any) -> Flask:
    """See :func:`gateway.app.create_app` (imported lazily so ``import gateway`` stays light)."""
    from gateway.app import create_app as factory

    return factory(settings, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from gateway.settings import Settings

        return Settings
    raise AttributeError(f"module 'gateway' has no attribute {name!r}")
