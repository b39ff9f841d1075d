"""The friendly image API: multipart uploads, raw PNG/JPEG, or JSON arrays/base64 ->
``{"model", "backend", "version", "predictions": [{"digit", "probabilities"}]}``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.api import current_call, json_response, routed_model, selection, service
from gateway.codecs.image import decode_friendly, encode_friendly

__all__ = ["blueprint"]

blueprint = Blueprint("friendly", __name__)


def _classify(model: str) -> Response:
    call = current_call()
    routed_model(call, model)
    # Every uploaded file, repeated field names included (``files.values()`` keeps one per name).
    uploads = (
        [file.read() for _, file in request.files.items(multi=True)]
        if request.mimetype == "multipart/form-data"
        else []
    )
    body = b"" if uploads else request.get_data(cache=False)
    images = decode_friendly(request.content_type or "", body, uploads, call.gateway.limits)
    routed = call.gateway.predict(selection(call, model), images)
    call.routed(routed)
    reply: dict[str, Any] = {"model": model, "backend": routed.backend, "version": call.version}
    reply.update(encode_friendly(routed.prediction.probabilities))
    return json_response(reply)


@blueprint.post("/v1/models/<model:model>:classify")
def classify(model: str) -> Response:
    return _classify(model)


@blueprint.post("/predict")
def classify_default() -> Response:
    return _classify(service().settings.default_model)
