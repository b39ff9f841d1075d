"""TF Serving's REST API (and KServe V1): ``POST /v1/models/<m>[/versions/<v>|/labels/<l>]:predict``.

The gateway's busiest path, so it is served twice over the same code: :class:`FastPredict` answers it
as a plain WSGI function in front of Flask (Flask's request context, URL matching, hooks and response
objects cost about as much CPU as the decode, route and encode themselves), and the blueprint below
answers the requests the fast path hands on (an undeclared body length, a path it does not recognise
exactly). Both run :func:`predict_v1` and the bookkeeping of :mod:`gateway.api`, so they answer alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES

from gateway import codecs
from gateway.api import (
    Call,
    current_call,
    error_document,
    finish_call,
    routed_model,
    selection_for,
    start_call,
)
from gateway.errors import GatewayError, PayloadTooLarge
from gateway.jsonio import dumps
from gateway.service import Gateway

__all__ = ["FastPredict", "blueprint", "predict_v1"]

log = logging.getLogger(__name__)
blueprint = Blueprint("tfserving_rest", __name__)

_RULES = {  # endpoint -> the Flask rule, which names the span as the blueprint's route would
    "predict": "/v1/models/<model:model>:predict",
    "predict_version": "/v1/models/<model:model>/versions/<int:version>:predict",
    "predict_label": "/v1/models/<model:model>/labels/<label>:predict",
}
_PATH = re.compile(
    r"/v1/models/(?P<model>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"
    r"(?:/versions/(?P<version>[0-9]{1,18})|/labels/(?P<label>[A-Za-z0-9][A-Za-z0-9_-]{0,63}))?:predict"
)


def predict_v1(
    call: Call,
    model: str,
    version: int | None,
    label: str | None,
    media: str,
    body: Callable[[], bytes],
    headers: Any,
    query: str,
) -> bytes:
    """Decode a V1 body, route it, encode the answer. ``body`` is read only once the model and the
    content type have been checked."""
    routed_model(call, model)
    if media not in codecs.V1_CONTENT_TYPES:
        raise codecs.UnsupportedMediaType(f"content type {media or '(none)'!r}; send application/json")
    decoded = codecs.decode_v1(body(), call.gateway.limits)
    routed = call.gateway.predict(selection_for(call, model, version, label, headers, query), decoded.images)
    call.routed(routed)
    return dumps(codecs.encode_v1(routed.prediction.probabilities, decoded.columnar))


class FastPredict:
    """WSGI middleware: TF Serving REST predict requests without Flask; everything else to ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]], gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway
        self.max_body_bytes = gateway.settings.max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _PATH.fullmatch(environ.get("PATH_INFO", "")) if environ["REQUEST_METHOD"] == "POST" else None
        length = environ.get("CONTENT_LENGTH") or ""
        if match is None or not length.isdigit():
            return self.app(environ, start_response)
        model, version, label = match.group("model", "version", "label")
        endpoint = "predict_version" if version else "predict_label" if label else "predict"
        headers = EnvironHeaders(environ)
        call = start_call(self.gateway, headers, f"POST {_RULES[endpoint]}")
        status = 200
        extra: dict[str, str] = {}
        try:
            codecs.check_content_encoding(headers.get("Content-Encoding"))
            self.gateway.authenticate(headers.get("X-API-Key"), headers.get("Authorization"))
            media = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
            answer = predict_v1(
                call,
                model,
                int(version) if version else None,
                label,
                media,
                lambda: self._read(environ, int(length)),
                headers,
                environ.get("QUERY_STRING", ""),
            )
        except Exception as exc:  # the same answers as the app's error handlers
            error = exc if isinstance(exc, GatewayError) else _unexpected()
            document, extra = error_document(error, call, v2=False)
            status, answer = error.status, dumps(document) + b"\n"
        response_headers = [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        response_headers += finish_call(call, status, endpoint)
        response_headers += extra.items()
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", response_headers)
        return [answer]

    def _read(self, environ: dict[str, Any], length: int) -> bytes:
        _check_length(length, self.max_body_bytes)
        body: bytes = environ["wsgi.input"].read(length)
        return body


def _check_length(declared: int | None, limit: int) -> None:
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes; the limit is {limit} bytes")


def _unexpected() -> GatewayError:
    log.exception("unhandled error")  # the traceback goes to the log, never to the client
    return GatewayError("internal error")


def _body() -> bytes:
    _check_length(request.content_length, current_call().gateway.settings.max_body_bytes)
    return request.get_data(cache=False)


def _predict(model: str, version: int | None = None, label: str | None = None) -> Response:
    answer = predict_v1(
        current_call(),
        model,
        version,
        label,
        (request.mimetype or "").lower(),
        _body,
        request.headers,
        request.environ.get("QUERY_STRING", ""),
    )
    return Response(answer, mimetype="application/json")


@blueprint.post(_RULES["predict"])
def predict(model: str) -> Response:
    return _predict(model)


@blueprint.post(_RULES["predict_version"])
def predict_version(model: str, version: int) -> Response:
    return _predict(model, version=version)


@blueprint.post(_RULES["predict_label"])
def predict_label(model: str, label: str) -> Response:
    return _predict(model, label=label)
