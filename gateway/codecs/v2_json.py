"""Open Inference Protocol (KServe V2) infer bodies: the model's one input, FP32, shape ``[N, *item]``
or ``[N, item size]``, values in its range; its one output, FP32 (:mod:`gateway.codecs.tensors`).

Tensor data comes as JSON (flat or nested) or as the binary tensor data extension: the body starts with
a JSON header of ``Inference-Header-Content-Length`` bytes, and an input whose
``parameters.binary_data_size`` is set takes that many raw little-endian bytes from what follows, in
order (``tritonclient`` does this by default). The answer is binary when the request asks for it
(``binary_data_output``, or an output's ``binary_data``). ``id`` is echoed. The gRPC ingress reads
TF ``TensorProto`` inputs through :func:`image_tensor` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.codecs.json_body import Limits, check_count, parse_json, reject_booleans
from gateway.codecs.tensors import INPUT_NAME, ITEM_SHAPE, ITEM_SIZE, OUTPUT_NAME, as_pixels
from gateway.errors import InvalidInput
from gateway.jsonio import dumps

__all__ = [
    "EXTENSIONS",
    "HEADER_LENGTH",
    "INPUT",
    "OUTPUT",
    "V2Request",
    "decode_infer",
    "encode_infer",
    "image_tensor",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT, OUTPUT = INPUT_NAME, OUTPUT_NAME
EXTENSIONS = ["binary_tensor_data"]
_BATCH_FORMS = f"[N, {', '.join(map(str, ITEM_SHAPE))}] or [N, {ITEM_SIZE}]"


@dataclass(frozen=True)
class V2Request:
    images: np.ndarray
    id: str | None
    binary_output: bool


# -- decoding -------------------------------------------------------------------------------


def decode_infer(body: bytes, header_length: str | None, limits: Limits) -> V2Request:
    """An infer request body (JSON, or JSON header + binary tensors) -> validated ``[N, *item]``."""
    head, binary = _split(body, header_length)
    document = parse_json(head, limits, booleans=True)  # parameters may be booleans
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


def image_tensor(tensor: dict[str, Any], raw: bytes | None, limits: Limits) -> np.ndarray:
    datatype = tensor.get("datatype")
    if datatype != "FP32":
        raise InvalidInput(f"input {INPUT!r} has datatype {str(datatype)[:20]!r}; the model takes FP32")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or [d for d in shape[1:]] not in (list(ITEM_SHAPE), [ITEM_SIZE])
    ):
        raise InvalidInput(f"input {INPUT!r} has shape {str(shape)[:60]}; expected {_BATCH_FORMS}")
    count = shape[0]
    check_count(count, limits)
    if raw is not None:
        if len(raw) != count * ITEM_SIZE * 4:
            raise InvalidInput(f"input {INPUT!r}: {len(raw)} binary bytes for shape {shape} of FP32")
        values = as_pixels(np.frombuffer(raw, dtype="<f4"), f"input {INPUT!r}")
    else:
        if "data" not in tensor:
            raise InvalidInput(f"input {INPUT!r} has no 'data' and no binary data")
        reject_booleans(tensor["data"])  # numpy would read true as 1.0
        values = as_pixels(tensor["data"], f"input {INPUT!r}")
        if values.size != count * ITEM_SIZE:
            raise InvalidInput(f"input {INPUT!r}: {values.size} values for shape {shape}")
    return values.reshape(count, *ITEM_SHAPE)


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
