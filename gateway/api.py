"""What every HTTP protocol shares: per-request bookkeeping, errors, and the status endpoints.

Request bookkeeping (:mod:`gateway.calls`: request id, deadline, timing, span, metrics) and
authentication run in the hooks at the bottom for every blueprint; the wire protocols themselves (TF
Serving REST, the friendly image API, Open Inference Protocol V2) are modules of
:mod:`gateway.protocols` that decode, call the service through these helpers and encode.
"""

from __future__ import annotations

import hmac
import importlib.util
import logging
import mimetypes
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.routing import BaseConverter
from werkzeug.security import safe_join

from gateway import openapi
from gateway.calls import BACKEND_HEADER, REQUEST_ID_HEADER, Call, finish_call, log_refusal, start_call
from gateway.codecs.json_body import check_content_encoding
from gateway.errors import GatewayError, InvalidInput, NotFound, Unauthorized, envelope
from gateway.jsonio import dumps
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.router import Selection
from gateway.routing import RoutingError
from gateway.service import Gateway, bearer_token

__all__ = [
    "ModelNameConverter",
    "blueprint",
    "current_call",
    "error_document",
    "error_response",
    "json_response",
    "routed_model",
    "selection",
    "selection_for",
    "service",
]

blueprint = Blueprint("gateway", __name__)
log = logging.getLogger(__name__)

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_PUBLIC = {
    "gateway.livez",
    "gateway.readyz",
    "gateway.metrics",
    "gateway.openapi_json",
    "gateway.docs",
    "gateway.docs_asset",
    "gateway.page",
    "gateway.page_try",
    "gateway.page_asset",
    "v2_rest.server_live",
    "v2_rest.server_ready",
    "v2_rest.server_metadata",
}


class ModelNameConverter(BaseConverter):
    """``<model:name>``: a model name and nothing else, so ``GET /v1/models/mnist:predict`` is not
    taken for a status request about a model called ``mnist:predict`` (the path takes only POST)."""

    regex = _MODEL_NAME.pattern.strip("^$")


def json_response(document: Any) -> Response:
    return Response(dumps(document), mimetype="application/json")


def service() -> Gateway:
    gateway: Gateway = current_app.extensions["gateway"]
    return gateway


def current_call() -> Call:
    call: Call = g.call
    return call


def routed_model(call: Call, name: str) -> str:
    if not _MODEL_NAME.match(name) or not call.gateway.is_routed(name):
        raise NotFound(f"unknown model {name[:80]!r}")
    call.model = name
    return name


def selection(call: Call, model: str, version: int | None = None, label: str | None = None) -> Selection:
    return selection_for(
        call, model, version, label, request.headers, request.environ.get("QUERY_STRING", "")
    )


def selection_for(
    call: Call, model: str, version: int | None, label: str | None, headers: Any, query: str
) -> Selection:
    """What the client asked for. ``headers`` must look names up in any case (Werkzeug's headers do),
    as Selection.headers requires."""
    if label is not None and not _LABEL.match(label):
        raise NotFound("unknown label")
    explicit = headers.get(BACKEND_HEADER)
    if not explicit and query:  # parsing an empty query costs too
        explicit = next(
            (value for key, value in parse_qsl(query, keep_blank_values=True) if key == "backend"), None
        )
    return Selection(model, call.deadline, version, label, explicit or None, headers)


def error_document(error: GatewayError, call: Call | None, v2: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The error's body and headers: our envelope, or the Open Inference Protocol's ``{"error": ...}``
    under /v2."""
    log_refusal(error, call)
    request_id = call.request_id if call is not None else ""
    headers = error.headers()
    if v2:
        headers[REQUEST_ID_HEADER] = request_id
        return {"error": error.message}, headers
    return envelope(error, request_id), headers


# -- status ---------------------------------------------------------------------------------


@blueprint.get("/v1/models")
def models() -> Response:
    return jsonify({"models": sorted(service().table().models)})


@blueprint.get("/v1/models/<model:model>")
def model_status(model: str) -> Response:
    reports = service().model_report(routed_model(current_call(), model))
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


# -- pages: the "draw a digit" page and Swagger UI, both served from installed files (no CDN) ---------

_PAGE_DIR = str(Path(__file__).resolve().parent / "page")


@cache
def _swagger_ui_dir() -> str | None:
    """The Swagger UI files the flask-swagger-ui package ships (its blueprint is not used: the gateway
    serves the files itself, under /docs/, next to its own initializer)."""
    spec = importlib.util.find_spec("flask_swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "dist"
    return str(folder) if folder.is_dir() else None


@cache
def _read(path: str) -> tuple[bytes, str]:
    """A file's bytes and type, read once per worker (a few files, about 2.5 MB with Swagger UI's)."""
    with open(path, "rb") as stream:
        return stream.read(), mimetypes.guess_type(path)[0] or "application/octet-stream"


def _file(folder: str, name: str, max_age: int = 0) -> Response:
    path = safe_join(folder, name)  # None for a name that leaves the folder
    if path is None or not Path(path).is_file():
        raise NotFound(f"no file {name[:80]!r} here")
    data, mimetype = _read(path)
    response = Response(data, mimetype=mimetype)
    response.cache_control.public = True
    response.cache_control.max_age = max_age  # 0: the browser revalidates (ETag) on every load
    response.add_etag()
    response.make_conditional(request)  # 304 when the browser's copy is current
    return response


@blueprint.get("/")
def page() -> Response:
    return _file(_PAGE_DIR, "index.html")


@blueprint.get("/try")
def page_try() -> Response:
    return _file(_PAGE_DIR, "index.html")


@blueprint.get("/page/<path:name>")
def page_asset(name: str) -> Response:
    return _file(_PAGE_DIR, name)


@blueprint.get("/docs")
def docs() -> Response:
    return _file(_PAGE_DIR, "docs.html")


@blueprint.get("/docs/<path:name>")
def docs_asset(name: str) -> Response:
    folder = _swagger_ui_dir()
    if folder is None:
        raise NotFound("Swagger UI is not installed (pip install flask-swagger-ui)")
    return _file(folder, name, max_age=3600)


@blueprint.post("/admin/reload")
def admin_reload() -> Response:
    token = service().settings.admin_token
    if not token:
        raise NotFound("admin endpoints are disabled (set GATEWAY_ADMIN_TOKEN)")
    if not hmac.compare_digest(bearer_token(request.headers.get("Authorization")).encode(), token.encode()):
        raise Unauthorized("admin token missing or wrong")
    if service().routing.path is None:
        raise InvalidInput("no routing file is configured (GATEWAY_ROUTING_FILE)")
    try:
        table = service().routing.reload(force=True)
    except RoutingError as exc:
        raise InvalidInput(f"routing file rejected, previous table kept: {exc}") from exc
    return jsonify({"reloaded": True, "source": table.source, "models": sorted(table.models)})


# -- hooks ----------------------------------------------------------------------------------


@blueprint.before_app_request
def _start() -> None:
    gateway = service()
    headers = request.headers
    span_name = ""  # named only when there is a span to name
    if gateway.tracing.enabled:
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        span_name = f"{request.method} {rule}"
    g.call = start_call(gateway, headers, span_name)
    check_content_encoding(headers.get("Content-Encoding"))
    if request.endpoint not in _PUBLIC and request.endpoint != "gateway.admin_reload":
        gateway.authenticate(headers.get("X-API-Key"), headers.get("Authorization"))


@blueprint.after_app_request
def _finish(response: Response) -> Response:
    call: Call | None = g.get("call")
    if call is None:  # failed before _start ran (e.g. a malformed request line)
        return response
    endpoint = (request.endpoint or "unmatched").rpartition(".")[2]  # "predict", "infer", ...
    headers = response.headers
    for name, value in finish_call(call, response.status_code, endpoint):
        headers[name] = value  # replaces: an error answer may carry the request id already
    return response


def error_response(error: GatewayError) -> tuple[Response, int, dict[str, str]]:
    document, headers = error_document(error, g.get("call"), request.path.startswith("/v2"))
    return jsonify(document), error.status, headers
