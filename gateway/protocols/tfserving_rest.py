"""TF Serving's REST API (and KServe V1): ``POST /v1/models/<m>[/versions/<v>|/labels/<l>]:predict``."""

from __future__ import annotations

from flask import Blueprint, Response, request

from gateway import codecs
from gateway.api import current_call, json_response, routed_model, selection

__all__ = ["blueprint"]

blueprint = Blueprint("tfserving_rest", __name__)


def _predict(model: str, version: int | None = None, label: str | None = None) -> Response:
    call = current_call()
    routed_model(call, model)
    media = (request.mimetype or "").lower()
    if media not in codecs.V1_CONTENT_TYPES:
        raise codecs.UnsupportedMediaType(f"content type {media or '(none)'!r}; send application/json")
    decoded = codecs.decode_v1(request.get_data(cache=False), call.gateway.limits)
    routed = call.gateway.predict(selection(call, model, version, label), decoded.images)
    call.routed(routed)
    return json_response(codecs.encode_v1(routed.prediction.probabilities, decoded.columnar))


@blueprint.post("/v1/models/<model:model>:predict")
def predict(model: str) -> Response:
    return _predict(model)


@blueprint.post("/v1/models/<model:model>/versions/<int:version>:predict")
def predict_version(model: str, version: int) -> Response:
    return _predict(model, version=version)


@blueprint.post("/v1/models/<model:model>/labels/<label>:predict")
def predict_label(model: str, label: str) -> Response:
    return _predict(model, label=label)
