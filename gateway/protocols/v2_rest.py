"""Open Inference Protocol (KServe V2) over REST: what Triton, KServe runtimes and their clients speak.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``: server metadata, liveness, readiness.
- ``GET /v2/models/<m>[/versions/<v>]`` and ``.../ready``: model metadata (from the model contract) and
  readiness (any backend ready).
- ``POST /v2/models/<m>[/versions/<v>]/infer``: the body as :mod:`gateway.codecs.v2_json` reads it
  (JSON tensors or the binary tensor data extension), answered the same way.
- Errors are the protocol's ``{"error": "<message>"}`` with the usual status and ``X-Request-ID``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Blueprint, Response

from gateway.api import current_call, json_response, routed_model, selection_for, service
from gateway.calls import Call
from gateway.codecs.tensors import ITEM_SHAPE, OUTPUT_SHAPE, wire_shape
from gateway.codecs.v2_json import EXTENSIONS, HEADER_LENGTH, INPUT, OUTPUT, decode_infer, encode_infer
from gateway.fastpath import Answer, FastRoute, Incoming, register
from gateway.service import server_version

if TYPE_CHECKING:
    pass

__all__ = ["FAST_ROUTES", "blueprint", "infer"]

blueprint = Blueprint("v2_rest", __name__)


# -- endpoints ------------------------------------------------------------------------------


@blueprint.get("/v2")
def server_metadata() -> Response:
    return json_response(
        {"name": "mnist-serving-gateway", "version": server_version(), "extensions": EXTENSIONS}
    )


@blueprint.get("/v2/health/live")
def server_live() -> Response:
    return json_response({"live": True})


@blueprint.get("/v2/health/ready")
def server_ready() -> Response:
    models = service().readiness()
    ready = all(any(r.ready for r in reports) for reports in models.values())
    response = json_response({"ready": ready})
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/v2/models/<model:model>")
@blueprint.get("/v2/models/<model:model>/versions/<int:version>")
def model_metadata(model: str, version: int | None = None) -> Response:
    routed_model(current_call(), model)
    service().check_version(model, version)
    route = service().table().models[model]
    versions = sorted({*route.versions, *route.labels.values()})
    return json_response(
        {
            "name": model,
            "versions": [str(v) for v in versions],
            "platform": "mnist-serving-gateway",
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": wire_shape(ITEM_SHAPE)}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": wire_shape(OUTPUT_SHAPE)}],
        }
    )


@blueprint.get("/v2/models/<model:model>/ready")
@blueprint.get("/v2/models/<model:model>/versions/<int:version>/ready")
def model_ready(model: str, version: int | None = None) -> Response:
    routed_model(current_call(), model)
    service().check_version(model, version)
    ready = any(report.ready for report in service().model_report(model))
    response = json_response({"name": model, "ready": ready})
    response.status_code = 200 if ready else 503
    return response


def infer(call: Call, incoming: Incoming, model: str, version: int | None = None) -> Answer:
    routed_model(call, model)
    decoded = decode_infer(incoming.body(), incoming.headers.get(HEADER_LENGTH), call.gateway.limits)
    routed = call.gateway.predict(
        selection_for(call, model, version, None, incoming.headers, incoming.query), decoded.images
    )
    call.routed(routed)
    answered = routed.prediction.version or (str(version) if version is not None else "")
    return encode_infer(routed.prediction.probabilities, model, answered, decoded.id, decoded.binary_output)


_MODEL = r"/v2/models/(?P<model>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"
FAST_ROUTES = (
    FastRoute(
        "infer", "/v2/models/<model:model>/infer", re.compile(rf"{_MODEL}/infer"), infer, v2_errors=True
    ),
    FastRoute(
        "infer",
        "/v2/models/<model:model>/versions/<int:version>/infer",
        re.compile(rf"{_MODEL}/versions/(?P<version>[0-9]{{1,18}})/infer"),
        infer,
        v2_errors=True,
    ),
)
register(blueprint, FAST_ROUTES)
