"""The application factory: ``create_app(settings)``. No module-level app, nothing read at import time."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from gateway import api, protocols
from gateway.backends import Backend
from gateway.errors import GatewayError, for_status
from gateway.fastpath import FastPath
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.tracing import Tracing

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    backends: Mapping[str, Backend] | None = None,
    tracing: Tracing | None = None,
) -> Flask:
    """A configured gateway app.

    ``settings`` default to :class:`Settings`' defaults (not the environment: the launcher reads that).
    ``backends`` replaces the backend registry (tests inject fakes by name); ``tracing`` replaces the
    tracer the ``OTEL_*`` variables would configure (tests pass an in-memory exporter).
    """
    settings = settings or Settings()
    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # OPTIONS is not part of the API (openapi.json lists every method): it gets 405 and ``Allow``.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.url_map.converters["model"] = api.ModelNameConverter
    app.json.sort_keys = False  # type: ignore[attr-defined]
    gateway = Gateway(settings, backends, tracing)
    app.extensions["gateway"] = gateway
    app.register_blueprint(api.blueprint)
    for blueprint in protocols.BLUEPRINTS:
        app.register_blueprint(blueprint)
    _register_error_handlers(app)
    # Predict paths skip Flask's dispatch (gateway.fastpath); their blueprints serve what it hands on.
    app.wsgi_app = FastPath(app.wsgi_app, gateway, protocols.FAST_ROUTES)  # type: ignore[method-assign]
    if settings.warmup:
        gateway.warm_up()
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> tuple[Response, int, dict[str, str]]:
        return api.error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int, dict[str, str]]:
        status = error.code or 500
        ours = for_status(status)(error.description or error.name)
        response, _, headers = api.error_response(ours)
        allowed = getattr(error, "valid_methods", None)  # 405: say which methods the path takes
        if allowed:
            headers["Allow"] = ", ".join(sorted(set(allowed) - {"OPTIONS"}))
        return response, status, headers

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int, dict[str, str]]:
        log.exception("unhandled error")  # the traceback goes to the log, never to the client
        return api.error_response(GatewayError("internal error"))
