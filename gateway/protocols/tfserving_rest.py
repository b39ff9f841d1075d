"""TF Serving's REST API (and KServe V1): ``POST /v1/models/<m>[/versions/<v>|/labels/<l>]:predict``.

The gateway's busiest path: declared as fast routes (:mod:`gateway.fastpath`), answered without
Flask's dispatch, with the blueprint serving what the fast path hands on.
"""

from __future__ import annotations

import re

from flask import Blueprint

from gateway.api import routed_model, selection_for
from gateway.calls import Call
from gateway.codecs.v1_json import V1_CONTENT_TYPES, decode_v1, encode_v1
from gateway.errors import UnsupportedMediaType
from gateway.fastpath import Answer, FastRoute, Incoming, register
from gateway.jsonio import dumps

__all__ = ["FAST_ROUTES", "blueprint", "predict"]

blueprint = Blueprint("tfserving_rest", __name__)

_MODEL = r"(?P<model>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"


def predict(
    call: Call, incoming: Incoming, model: str, version: int | None = None, label: str | None = None
) -> Answer:
    """Decode a V1 body, route it, encode the answer."""
    routed_model(call, model)
    if incoming.media not in V1_CONTENT_TYPES:
        raise UnsupportedMediaType(f"content type {incoming.media or '(none)'!r}; send application/json")
    decoded = decode_v1(incoming.body(), call.gateway.limits)
    chosen = selection_for(call, model, version, label, incoming.headers, incoming.query)
    routed = call.gateway.predict(chosen, decoded.images)
    call.routed(routed)
    return dumps(encode_v1(routed.prediction.probabilities, decoded.columnar)), {
        "Content-Type": "application/json"
    }


FAST_ROUTES = (
    FastRoute(
        "predict", "/v1/models/<model:model>:predict", re.compile(rf"/v1/models/{_MODEL}:predict"), predict
    ),
    FastRoute(
        "predict_version",
        "/v1/models/<model:model>/versions/<int:version>:predict",
        re.compile(rf"/v1/models/{_MODEL}/versions/(?P<version>[0-9]{{1,18}}):predict"),
        predict,
    ),
    FastRoute(
        "predict_label",
        "/v1/models/<model:model>/labels/<label>:predict",
        re.compile(rf"/v1/models/{_MODEL}/labels/(?P<label>[A-Za-z0-9][A-Za-z0-9_-]{{0,63}}):predict"),
        predict,
    ),
)
register(blueprint, FAST_ROUTES)
