"""TF Serving / KServe V1 JSON: ``{"instances": [...]}`` (row format; an item is one instance of the
model's input, nested or flat, or ``{"<input name>": ...}``) or ``{"inputs": [...] | {"<input name>":
[...]}}`` (columnar), answered with ``predictions`` or ``outputs``.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np
import simdjson

from gateway.codecs.json_body import Limits, check_count, parse_json
from gateway.codecs.tensors import INPUT_NAME, ITEM_SHAPE, ITEM_SIZE, as_batch, as_pixels, in_range, one_item
from gateway.errors import InvalidInput
from model_store import CONTRACT

__all__ = ["V1_CONTENT_TYPES", "V1Request", "decode_v1", "encode_v1"]

V1_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")  # the second: `curl -d` default


class V1Request(NamedTuple):
    images: np.ndarray
    columnar: bool


_SHAPE_MARKS = b'[]{},"'
_NOT_SHAPE_MARKS = bytes(sorted(set(range(256)) - set(_SHAPE_MARKS)))


def _brackets(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of one instance of ``shape`` written as nested JSON lists."""
    inner = b"" if len(shape) == 1 else _brackets(shape[1:])
    return b"[" + b",".join([inner] * shape[0]) + b"]"


_ITEM_NESTED = _brackets(ITEM_SHAPE)
_ITEM_FLAT = _brackets((ITEM_SIZE,))
_USUAL_MAX_BYTES = 256 * 1024
"""Bodies up to this size may take :func:`_usual_instances` (an MNIST image is 5-16 KB of JSON); the
bound also caps the memory each thread's parser keeps."""
_parsers = threading.local()


def _usual_shape(marks: bytes, max_instances: int) -> tuple[int, ...] | None:
    """The shape of ``{"key": N images}`` whose brackets, braces, commas and quote marks are
    ``marks``, when the key is the only string, the instances are all nested or all flat and
    1 <= N <= ``max_instances``; else None."""
    opening = marks.count(b"[")
    for image, shape in ((_ITEM_NESTED, ITEM_SHAPE), (_ITEM_FLAT, (ITEM_SIZE,))):
        per_image = image.count(b"[")
        count, rest = divmod(opening - 1, per_image)
        if not rest and 1 <= count <= max_instances and marks == b'{""[' + b",".join([image] * count) + b"]}":
            return (count, *shape)
    return None


def _usual_instances(body: bytes, limits: Limits) -> np.ndarray | None:
    """The common body, ``{"instances": [...]}`` with N images of numbers in range, read straight
    into an array; None for anything else, which :func:`decode_v1`'s general path then reads (or
    refuses with the reason).

    The general path builds a Python float for each pixel and numpy then walks those lists: about
    three quarters of a request's decoding. Here simdjson parses the numbers into one buffer instead,
    and the same checks hold: the brackets and commas alone fix the shape (and so the depth and the
    count) before parsing, and the only two quote marks, right after the opening brace, mean no strings
    besides the key (one pass over the body finds them all); simdjson refuses what is
    not JSON (NaN, invalid UTF-8, trailing bytes) and ``as_buffer`` any element that is not a number.
    The values are the general path's to the bit (both parsers round decimal text correctly)."""
    if (
        len(body) > _USUAL_MAX_BYTES
        or body[:1] != b"{"  # simdjson would skip a byte order mark, which parse_json refuses
        or limits.max_json_depth < 4
    ):
        return None
    shape = _usual_shape(body.translate(None, _NOT_SHAPE_MARKS), limits.max_instances)
    if shape is None:
        return None
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser(max_capacity=_USUAL_MAX_BYTES)
    try:
        document = parser.parse(body)
        instances = document["instances"] if isinstance(document, simdjson.Object) else None
        if not isinstance(instances, simdjson.Array):
            return None
        values = np.frombuffer(instances.as_buffer(of_type="d"), dtype=np.float64)
    except (ValueError, TypeError, KeyError, RuntimeError):
        return None  # the general path says what is wrong
    if not in_range(values):
        return None
    return values.astype(np.float32).reshape(shape[0], *ITEM_SHAPE)


def decode_v1(body: bytes, limits: Limits) -> V1Request:
    usual = _usual_instances(body, limits)
    if usual is not None:
        return V1Request(usual, columnar=False)
    payload = parse_json(body, limits)
    if not isinstance(payload, dict):
        raise InvalidInput('body must be a JSON object with "instances" or "inputs"')
    if len(payload) == 1 and "instances" in payload:  # the usual body: nothing else to check
        return V1Request(_instances(payload["instances"], limits), columnar=False)
    present = [key for key in ("instances", "inputs") if key in payload]
    if len(present) != 1:
        raise InvalidInput('body must have exactly one of "instances" or "inputs"')
    if extra := sorted(set(payload) - {"instances", "inputs", "signature_name"}):
        raise InvalidInput(f"unknown field(s) {extra}")
    signature = payload.get("signature_name", CONTRACT.signature_name)
    if signature != CONTRACT.signature_name:
        raise InvalidInput(f"unknown signature_name {signature!r}; the model has {CONTRACT.signature_name!r}")
    if present[0] == "instances":
        return V1Request(_instances(payload["instances"], limits), columnar=False)
    return V1Request(_inputs(payload["inputs"], limits), columnar=True)


def _instances(value: Any, limits: Limits) -> np.ndarray:
    if not isinstance(value, list):
        raise InvalidInput('"instances" must be a list')
    check_count(len(value), limits)
    if all(isinstance(item, dict) for item in value):
        rows = []
        for index, item in enumerate(value):
            if set(item) != {INPUT_NAME}:
                raise InvalidInput(f'instance {index}: expected an object with only "{INPUT_NAME}"')
            rows.append(one_item(item[INPUT_NAME], f"instance {index}"))
        return np.stack(rows)
    return as_batch(as_pixels(value, "instances"), "instances")


def _inputs(value: Any, limits: Limits) -> np.ndarray:
    if isinstance(value, dict):
        if set(value) != {INPUT_NAME}:
            raise InvalidInput(f'"inputs" object must have only "{INPUT_NAME}"')
        value = value[INPUT_NAME]
    if not isinstance(value, list):
        raise InvalidInput('"inputs" must be a list of images or {"image": [...]}')
    check_count(len(value), limits)
    return as_batch(as_pixels(value, "inputs"), "inputs")


def encode_v1(probabilities: np.ndarray, columnar: bool) -> dict[str, Any]:
    """The TF Serving V1 reply; ``dumps`` serialises the array without a Python list in between."""
    return {"outputs" if columnar else "predictions": probabilities}
