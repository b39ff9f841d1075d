"""Open Inference Protocol (KServe V2) over REST: what Triton, KServe runtimes and their clients speak.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``: server metadata, liveness, readiness.
- ``GET /v2/models/<m>[/versions/<v>]`` and ``.../ready``: model metadata (from the model contract) and
  readiness (any backend ready).
- ``POST /v2/models/<m>[/versions/<v>]/infer``: one input ``image``, FP32, shape ``[N, 28, 28]`` or
  ``[N, 784]``, values in [0, 1]; one output ``probabilities``, FP32 ``[N, 10]``. Tensor data as JSON
  (flat or nested) or as the binary tensor data extension: the body starts with a JSON header of
  ``Inference-Header-Content-Length`` bytes, and an input whose ``parameters.binary_data_size`` is set
  takes that many raw little-endian bytes from what follows, in order (``tritonclient`` does this by
  default). The answer is binary when the request asks for it (``binary_data_output``, or an output's
  ``binary_data``). ``id`` is echoed.
- Errors are the protocol's ``{"error": "<message>"}`` with the usual status and ``X-Request-ID``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
from flask import Blueprint, Response

from gateway import codecs
from gateway.api import Call, current_call, json_response, routed_model, selection_for, service
from gateway.errors import InvalidInput, NotFound
from gateway.fastpath import Answer, FastRoute, Incoming, register
from gateway.jsonio import dumps
from model_store import CONTRACT, NUM_CLASSES
from model_store.contract import IMAGE_HEIGHT, IMAGE_WIDTH

if TYPE_CHECKING:
    from gateway.service import Gateway

__all__ = [
    "FAST_ROUTES",
    "HEADER_LENGTH",
    "V2Request",
    "blueprint",
    "decode_infer",
    "encode_infer",
    "image_tensor",
    "infer",
    "server_version",
]

blueprint = Blueprint("v2_rest", __name__)
HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT, OUTPUT = CONTRACT.input.name, CONTRACT.output.name
PIXELS = IMAGE_HEIGHT * IMAGE_WIDTH
EXTENSIONS = ["binary_tensor_data"]


@dataclass(frozen=True)
class V2Request:
    images: np.ndarray
    id: str | None
    binary_output: bool


# -- decoding -------------------------------------------------------------------------------


def decode_infer(body: bytes, header_length: str | None, limits: codecs.Limits) -> V2Request:
    """An infer request body (JSON, or JSON header + binary tensors) -> validated ``[N, 28, 28]``."""
    head, binary = _split(body, header_length)
    document = codecs.parse_json(head, limits, booleans=True)  # parameters may be booleans
    if not isinstance(document, dict):
        raise InvalidInput("an infer request is a JSON object with 'inputs'")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    images: np.ndarray | None = None
    offset = 0
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise InvalidInput("each input must be an object with name, shape, datatype and data")
        size = _binary_size(tensor)
        if tensor.get("name") != INPUT:
            raise InvalidInput(f"unknown input {str(tensor.get('name'))[:40]!r}; the model takes {INPUT!r}")
        if images is not None:
            raise InvalidInput(f"input {INPUT!r} is given twice")
        if size is not None:
            if offset + size > len(binary):
                raise InvalidInput(f"input {INPUT!r} declares {size} binary bytes; fewer were sent")
            images = image_tensor(tensor, binary[offset : offset + size], limits)
            offset += size
        else:
            images = image_tensor(tensor, None, limits)
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data belong to no input")
    assert images is not None  # inputs is non-empty and every item either set it or raised
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    return V2Request(images, request_id, _binary_output(document))


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidInput(f"{HEADER_LENGTH} {header_length[:20]!r} does not fit a body of {len(body)} bytes")
    size = int(header_length)
    return body[:size], body[size:]


def _binary_size(tensor: dict[str, Any]) -> int | None:
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput("'binary_data_size' must be a non-negative integer")
    return size


def image_tensor(tensor: dict[str, Any], raw: bytes | None, limits: codecs.Limits) -> np.ndarray:
    datatype = tensor.get("datatype")
    if datatype != "FP32":
        raise InvalidInput(f"input {INPUT!r} has datatype {str(datatype)[:20]!r}; the model takes FP32")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or [d for d in shape[1:]] not in ([IMAGE_HEIGHT, IMAGE_WIDTH], [PIXELS])
    ):
        raise InvalidInput(f"input {INPUT!r} has shape {str(shape)[:60]}; expected [N, 28, 28] or [N, 784]")
    count = shape[0]
    codecs.check_count(count, limits)
    if raw is not None:
        if len(raw) != count * PIXELS * 4:
            raise InvalidInput(f"input {INPUT!r}: {len(raw)} binary bytes for shape {shape} of FP32")
        values = codecs.as_pixels(np.frombuffer(raw, dtype="<f4"), f"input {INPUT!r}")
    else:
        if "data" not in tensor:
            raise InvalidInput(f"input {INPUT!r} has no 'data' and no binary data")
        codecs.reject_booleans(tensor["data"])  # numpy would read true as 1.0
        values = codecs.as_pixels(tensor["data"], f"input {INPUT!r}")
        if values.size != count * PIXELS:
            raise InvalidInput(f"input {INPUT!r}: {values.size} values for shape {shape}")
    return values.reshape(count, IMAGE_HEIGHT, IMAGE_WIDTH)


def _binary_output(document: dict[str, Any]) -> bool:
    parameters = document.get("parameters") or {}
    wanted = document.get("outputs")
    if wanted is None:
        return bool(isinstance(parameters, dict) and parameters.get("binary_data_output"))
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise InvalidInput("'outputs' must be a list of objects with a name")
    names = [o.get("name") for o in wanted]
    if any(name != OUTPUT for name in names):
        raise InvalidInput(f"unknown output in {str(names)[:60]}; the model has {OUTPUT!r}")
    return any(bool((o.get("parameters") or {}).get("binary_data")) for o in wanted)


# -- encoding -------------------------------------------------------------------------------


def encode_infer(
    probabilities: np.ndarray, model: str, version: str, request_id: str | None, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The response body and the headers it needs (the binary header length, the content type)."""
    output: dict[str, Any] = {"name": OUTPUT, "datatype": "FP32", "shape": list(probabilities.shape)}
    document: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": [output]}
    if request_id is not None:
        document["id"] = request_id
    if not binary:
        output["data"] = probabilities.astype(np.float32).ravel()
        return dumps(document), {"Content-Type": "application/json"}
    raw = probabilities.astype("<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    head = dumps(document)
    return head + raw, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}


# -- endpoints ------------------------------------------------------------------------------


def server_version() -> str:
    try:
        return metadata.version("mnist-serving-gateway")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        return "unknown"


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


def known_version(gateway: Gateway, model: str, version: int | None) -> None:
    """404 for a version the routing table does not serve (where it lists versions; else the backend
    decides). Metadata and readiness reach no backend: without this they would answer for any version."""
    if version is None:
        return
    route = gateway.table().models[model]
    served = {*route.versions, *route.labels.values()}
    if served and version not in served:
        raise NotFound(f"model {model!r} has no version {version} in the routing table")


@blueprint.get("/v2/models/<model:model>")
@blueprint.get("/v2/models/<model:model>/versions/<int:version>")
def model_metadata(model: str, version: int | None = None) -> Response:
    routed_model(current_call(), model)
    known_version(service(), model, version)
    route = service().table().models[model]
    versions = sorted({*route.versions, *route.labels.values()})
    return json_response(
        {
            "name": model,
            "versions": [str(v) for v in versions],
            "platform": "mnist-serving-gateway",
            "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, IMAGE_HEIGHT, IMAGE_WIDTH]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, NUM_CLASSES]}],
        }
    )


@blueprint.get("/v2/models/<model:model>/ready")
@blueprint.get("/v2/models/<model:model>/versions/<int:version>/ready")
def model_ready(model: str, version: int | None = None) -> Response:
    routed_model(current_call(), model)
    known_version(service(), model, version)
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
