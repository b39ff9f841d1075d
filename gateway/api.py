"""The HTTP layer: thin endpoints over :class:`gateway.service.Gateway`.

Request bookkeeping (request id, timing, auth, response headers, metrics) lives in the hooks at the
bottom; the endpoints only decode, call the service and encode.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from gateway import codecs, openapi
from gateway.errors import GatewayError, InvalidInput, NotFound, Unauthorized, envelope
from gateway.jsonio import dumps
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.router import Routed, Selection
from gateway.routing import RoutingError
from gateway.service import Gateway

__all__ = ["BACKEND_HEADER", "REQUEST_ID_HEADER", "blueprint", "error_response"]

blueprint = Blueprint("gateway", __name__)

REQUEST_ID_HEADER = "X-Request-ID"
BACKEND_HEADER = "X-Gateway-Backend"
VERSION_HEADER = "X-Model-Version"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_PUBLIC = {"gateway.livez", "gateway.readyz", "gateway.metrics", "gateway.openapi_json", "gateway.docs"}


def _json(document: Any) -> Response:
    return Response(dumps(document), mimetype="application/json")


def service() -> Gateway:
    gateway: Gateway = current_app.extensions["gateway"]
    return gateway


def _limits() -> codecs.Limits:
    s = service().settings
    return codecs.Limits(s.max_instances, s.max_json_depth, s.max_image_side)


def _model(name: str) -> str:
    if not _MODEL_NAME.match(name) or not service().is_routed(name):
        raise NotFound(f"unknown model {name[:80]!r}")
    g.model = name
    return name


def _selection(model: str, version: int | None = None, label: str | None = None) -> Selection:
    if label is not None and not _LABEL.match(label):
        raise NotFound("unknown label")
    explicit = request.headers.get(BACKEND_HEADER) or request.args.get("backend") or None
    headers = {key.lower(): value for key, value in request.headers.items()}
    return Selection(model, g.deadline, version, label, explicit, headers)


def _routed(routed: Routed) -> None:
    g.backend = routed.backend
    g.version = routed.prediction.version or "default"
    g.backend_seconds = routed.prediction.backend_seconds
    g.attempts = routed.attempts


# -- predict --------------------------------------------------------------------------------


def _predict_v1(model: str, version: int | None = None, label: str | None = None) -> Response:
    _model(model)
    media = (request.mimetype or "").lower()
    if media not in codecs.V1_CONTENT_TYPES:
        raise codecs.UnsupportedMediaType(f"content type {media or '(none)'!r}; send application/json")
    decoded = codecs.decode_v1(request.get_data(cache=False), _limits())
    routed = service().predict(_selection(model, version, label), decoded.images)
    _routed(routed)
    return _json(codecs.encode_v1(routed.prediction.probabilities, decoded.columnar))


@blueprint.post("/v1/models/<model>:predict")
def predict(model: str) -> Response:
    return _predict_v1(model)


@blueprint.post("/v1/models/<model>/versions/<int:version>:predict")
def predict_version(model: str, version: int) -> Response:
    return _predict_v1(model, version=version)


@blueprint.post("/v1/models/<model>/labels/<label>:predict")
def predict_label(model: str, label: str) -> Response:
    return _predict_v1(model, label=label)


def _classify(model: str) -> Response:
    _model(model)
    uploads = (
        [file.read() for file in request.files.values()] if request.mimetype == "multipart/form-data" else []
    )
    body = b"" if uploads else request.get_data(cache=False)
    images = codecs.decode_friendly(request.content_type or "", body, uploads, _limits())
    routed = service().predict(_selection(model), images)
    _routed(routed)
    reply: dict[str, Any] = {"model": model, "backend": routed.backend, "version": g.version}
    reply.update(codecs.encode_friendly(routed.prediction.probabilities))
    return _json(reply)


@blueprint.post("/v1/models/<model>:classify")
def classify(model: str) -> Response:
    return _classify(model)


@blueprint.post("/predict")
def classify_default() -> Response:
    return _classify(service().settings.default_model)


# -- status ---------------------------------------------------------------------------------


@blueprint.get("/v1/models")
def models() -> Response:
    return jsonify({"models": sorted(service().table().models)})


@blueprint.get("/v1/models/<model>")
def model_status(model: str) -> Response:
    reports = service().model_report(_model(model))
    return jsonify(
        {"name": model, "ready": any(r.ready for r in reports), "backends": [r.to_dict() for r in reports]}
    )


@blueprint.get("/livez")
def livez() -> Response:
    return jsonify({"status": "alive"})


@blueprint.get("/readyz")
def readyz() -> Response:
    models = service().readiness()
    ready = all(any(r.ready for r in reports) for reports in models.values())
    body = {
        "ready": ready,
        "models": {
            m: {"ready": any(r.ready for r in reps), "backends": [r.to_dict() for r in reps]}
            for m, reps in models.items()
        },
    }
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    return Response(service().metrics.render(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi.document())


@blueprint.get("/docs")
def docs() -> Response:
    return Response(openapi.DOCS_HTML, mimetype="text/html")


@blueprint.post("/admin/reload")
def admin_reload() -> Response:
    token = service().settings.admin_token
    if not token:
        raise NotFound("admin endpoints are disabled (set GATEWAY_ADMIN_TOKEN)")
    if not hmac.compare_digest(_bearer().encode(), token.encode()):
        raise Unauthorized("admin token missing or wrong")
    if service().routing.path is None:
        raise InvalidInput("no routing file is configured (GATEWAY_ROUTING_FILE)")
    try:
        table = service().routing.reload(force=True)
    except RoutingError as exc:
        raise InvalidInput(f"routing file rejected, previous table kept: {exc}") from exc
    return jsonify({"reloaded": True, "source": table.source, "models": sorted(table.models)})


# -- hooks ----------------------------------------------------------------------------------


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


@blueprint.before_app_request
def _start() -> None:
    g.started = time.perf_counter()
    g.deadline = time.monotonic() + service().settings.deadline_s
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    codecs.check_content_encoding(request.headers.get("Content-Encoding"))
    keys = service().settings.api_keys
    if keys and request.endpoint not in _PUBLIC and request.endpoint != "gateway.admin_reload":
        offered = (request.headers.get("X-API-Key") or _bearer()).encode()
        if not any(hmac.compare_digest(offered, key.encode()) for key in keys):
            raise Unauthorized("missing or wrong API key")


@blueprint.after_app_request
def _finish(response: Response) -> Response:
    started = g.get("started")
    total = time.perf_counter() - started if started is not None else 0.0
    backend_s = g.get("backend_seconds", 0.0)
    backend = g.get("backend", "")
    version = g.get("version", "")
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    if backend:
        response.headers[BACKEND_HEADER] = backend
        response.headers[VERSION_HEADER] = version
        response.headers["X-Gateway-Attempts"] = ",".join(g.get("attempts", ()))
    response.headers["Server-Timing"] = (
        f"gateway;dur={(total - backend_s) * 1000:.3f}, backend;dur={backend_s * 1000:.3f}, "
        f"total;dur={total * 1000:.3f}"
    )
    endpoint = (request.endpoint or "unmatched").removeprefix("gateway.")
    if endpoint not in ("metrics", "livez", "readyz"):
        service().metrics.request(
            endpoint, g.get("model", ""), backend, version, response.status_code, total, backend_s
        )
    return response


def error_response(error: GatewayError) -> tuple[Response, int, dict[str, str]]:
    if error.backend and "backend" not in g:
        g.backend = error.backend
    return jsonify(envelope(error, g.get("request_id", ""))), error.status, error.headers()
