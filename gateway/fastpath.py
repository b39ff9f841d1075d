"""Predict paths served without Flask's dispatch, with the same code the Flask routes run.

Flask's request context, URL matching, hooks and response objects cost about as much CPU as a
prediction's decode, routing and encode together, on the path that carries nearly all the traffic.
So each protocol module declares its predict paths as :class:`FastRoute` values: a handler that takes
the request's bookkeeping (:class:`gateway.api.Call`) and an :class:`Incoming` (headers, content type,
query, body) and returns the answer's bytes and headers. :class:`FastPath`, a WSGI middleware in front
of the Flask app, answers POSTs to those paths itself; :func:`register` also adds each one to the
protocol's blueprint, which serves what the middleware hands on (a body without a declared length, a
path it does not match exactly) and keeps the routes in Flask's URL map (405 for GET, OpenAPI checks).
Both ways run the same handler and the same bookkeeping, so they answer alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from flask import Blueprint, Response, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import BadRequestKeyError
from werkzeug.http import HTTP_STATUS_CODES

from gateway.api import current_call, error_document
from gateway.calls import finish_call, start_call
from gateway.codecs.json_body import check_content_encoding
from gateway.errors import GatewayError, PayloadTooLarge
from gateway.jsonio import dumps
from gateway.service import Gateway

__all__ = ["Answer", "FastPath", "FastRoute", "Incoming", "register"]

log = logging.getLogger(__name__)

Answer = tuple[bytes, dict[str, str]]
"""The body and the headers it needs (its content type at least)."""


class Incoming(NamedTuple):
    """What a handler may read of a request, the same whether Flask parsed it or not
    (a NamedTuple: built for every request, and a tuple costs a third of a frozen dataclass to build)."""

    headers: Any
    """Looks names up in any case (Werkzeug's headers), as :class:`gateway.router.Selection` requires."""
    media: str
    """The content type without parameters, lower case ("" when none was sent)."""
    query: str
    body: Callable[[], bytes]
    """Reads the body (once): called after the checks that need no body, so a refused request is not read."""


@dataclass(frozen=True)
class FastRoute:
    endpoint: str
    """The view's name: Flask's endpoint within the blueprint and the metrics' ``endpoint`` label."""
    rule: str
    """The Flask rule (its converters name the handler's keyword arguments); it also names the span."""
    pattern: re.Pattern[str]
    """Matches exactly the paths the rule does for valid names; a path it misses goes to Flask."""
    handle: Callable[..., Answer]
    """``handle(call, incoming, **path_arguments)``; raises :class:`GatewayError` for a refusal."""
    v2_errors: bool = False
    """Errors in the Open Inference Protocol's shape (``{"error": ...}``), as under /v2."""
    integers: tuple[str, ...] = ("version",)
    """Path arguments converted to ``int`` (the rule's ``<int:...>``)."""

    def arguments(self, match: re.Match[str]) -> dict[str, Any]:
        found = {name: value for name, value in match.groupdict().items() if value is not None}
        return {name: int(value) if name in self.integers else value for name, value in found.items()}


def register(blueprint: Blueprint, routes: Sequence[FastRoute]) -> None:
    """Add ``routes`` to ``blueprint`` as POST views (one view per endpoint, however many rules)."""
    views: dict[str, Callable[..., Response]] = {}
    for route in routes:
        view = views.get(route.endpoint)
        if view is None:
            view = views[route.endpoint] = _flask_view(route)
        blueprint.add_url_rule(route.rule, endpoint=route.endpoint, view_func=view, methods=["POST"])


def _flask_view(route: FastRoute) -> Callable[..., Response]:
    def view(**arguments: Any) -> Response:
        incoming = Incoming(
            request.headers,
            (request.mimetype or "").lower(),
            request.environ.get("QUERY_STRING", ""),
            _flask_body,
        )
        body, headers = route.handle(current_call(), incoming, **arguments)
        return Response(body, headers=headers)

    view.__name__ = route.endpoint
    return view


def _flask_body() -> bytes:
    _check_length(request.content_length, current_call().gateway.settings.max_body_bytes)
    return request.get_data(cache=False)


def _check_length(declared: int | None, limit: int) -> None:
    if declared is not None and declared > limit:
        raise PayloadTooLarge.declared(declared, limit)


_ENVIRON_KEYS: dict[str, str] = {}
"""Header name -> its WSGI environ key, as :class:`EnvironHeaders` spells it (the gateway asks for a
handful of names, the routing file's sticky header among them)."""
_MAX_ENVIRON_KEYS = 512


class _Headers(EnvironHeaders):
    """Werkzeug's view of the request headers, with each name's environ key worked out once and no
    exception for an absent header: a request looks up five or six names, most of them absent, and
    that cost a few µs of each."""

    def _get_key(self, key: str) -> str:
        value: str = self.environ[_environ_key(key)]
        return value

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]
        if type is not None:
            return super().get(key, default, type)
        return self.environ.get(_environ_key(key), default)


def _environ_key(name: str) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        if not isinstance(name, str):
            raise BadRequestKeyError(name)
        upper = name.upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{upper}"
        if len(_ENVIRON_KEYS) < _MAX_ENVIRON_KEYS:  # names are the gateway's own and the routing file's
            _ENVIRON_KEYS[name] = key
    return key


class FastPath:
    """WSGI middleware: POSTs to ``routes`` answered without Flask; everything else to ``app``."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], gateway: Gateway, routes: Sequence[FastRoute]
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.routes = tuple(routes)
        self.max_body_bytes = gateway.settings.max_body_bytes

    def _match(self, environ: dict[str, Any]) -> tuple[FastRoute, re.Match[str]] | None:
        if environ["REQUEST_METHOD"] != "POST" or not (environ.get("CONTENT_LENGTH") or "").isdigit():
            return None
        path = environ.get("PATH_INFO", "")
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is not None:
                return route, match
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found = self._match(environ)
        if found is None:
            return self.app(environ, start_response)
        route, match = found
        headers = _Headers(environ)
        call = start_call(self.gateway, headers, f"POST {route.rule}")
        status = 200
        try:  # the checks of gateway.api's request hook, then the handler
            check_content_encoding(headers.get("Content-Encoding"))
            self.gateway.authenticate(headers.get("X-API-Key"), headers.get("Authorization"))
            incoming = Incoming(
                headers,
                environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower(),
                environ.get("QUERY_STRING", ""),
                lambda: self._read(environ),
            )
            body, answer_headers = route.handle(call, incoming, **route.arguments(match))
        except Exception as exc:  # the same answers as the app's error handlers
            error = exc if isinstance(exc, GatewayError) else _unexpected()
            document, answer_headers = error_document(error, call, route.v2_errors)
            answer_headers["Content-Type"] = "application/json"
            status, body = error.status, dumps(document) + b"\n"
        # The bookkeeping replaces a header of the same name, as in the Flask hook (a V2 error's request id).
        response_headers = {**answer_headers, "Content-Length": str(len(body))}
        response_headers.update(finish_call(call, status, route.endpoint))
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", list(response_headers.items()))
        return [body]

    def _read(self, environ: dict[str, Any]) -> bytes:
        length = int(environ["CONTENT_LENGTH"])
        _check_length(length, self.max_body_bytes)
        body: bytes = environ["wsgi.input"].read(length)
        return body


def _unexpected() -> GatewayError:
    log.exception("unhandled error")  # the traceback goes to the log, never to the client
    return GatewayError("internal error")
