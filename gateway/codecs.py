"""Request bodies -> float32 ``[N, 28, 28]`` in [0, 1]; results -> response bodies.

Everything is validated here, before any backend sees it: JSON syntax, ``NaN``/``Infinity`` tokens
(TF Serving would accept them), nesting depth (checked on the raw bytes, before parsing), types,
shapes, value range, instance count, image format and size.

Two request families:

- TF Serving / KServe V1: ``{"instances": [...]}`` (row format; an item is 28x28, 784 flat values or
  ``{"image": ...}``) or ``{"inputs": [...] | {"image": [...]}}`` (columnar) -> ``predictions`` / ``outputs``.
- Friendly: multipart upload(s), a raw ``image/png`` / ``image/jpeg`` body, or JSON ``{"image": x}`` /
  ``{"images": [x, ...]}`` where ``x`` is 28x28 numbers, 784 numbers or a base64 PNG/JPEG string (a
  ``data:`` URL is fine) -> one ``{"digit", "probabilities"}`` per image.

Image policy: PNG and JPEG only; any mode is converted to 8-bit grayscale (alpha dropped); an image that
is not 28x28 is resized to 28x28 (Lanczos) if neither side exceeds ``max_image_side``, else rejected.
Digits must be light on a dark background like MNIST; nothing is inverted.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple, NoReturn

import numpy as np
import orjson
import simdjson
from PIL import Image, UnidentifiedImageError

from gateway.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from model_store import CONTRACT

__all__ = [
    "Limits",
    "V1Request",
    "as_pixels",
    "check_content_encoding",
    "check_count",
    "decode_friendly",
    "decode_v1",
    "encode_friendly",
    "encode_v1",
    "parse_json",
    "reject_booleans",
]

SIDE = 28
PIXELS = SIDE * SIDE
LOW, HIGH = CONTRACT.input_range
V1_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")  # the second: `curl -d` default
IMAGE_CONTENT_TYPES = ("image/png", "image/jpeg")
_IMAGE_FORMATS = ("PNG", "JPEG")


@dataclass(frozen=True)
class Limits:
    max_instances: int = 256
    max_json_depth: int = 8
    max_image_side: int = 1024


class V1Request(NamedTuple):
    images: np.ndarray
    columnar: bool


def check_content_encoding(encoding: str | None) -> None:
    if encoding and encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed"
        )


def _reject_constant(token: str) -> float:
    raise InvalidInput(f"JSON token {token} is not allowed: values must be finite numbers")


_BRACKETS = b"[]{}"
_MARKS = _BRACKETS + b"lr"
"""What :func:`parse_json` keeps of a body: the brackets, and the letters that tell whether a boolean
may be in it ("false" holds an "l", "true" an "r"; numbers hold neither)."""
_NOT_MARKS = bytes(sorted(set(range(256)) - set(_MARKS)))
_DEPTH_STEP = np.zeros(256, dtype=np.int32)
_DEPTH_STEP[list(b"[{")] = 1
_DEPTH_STEP[list(b"]}")] = -1
_LOOP_UP_TO = 256
"""Up to this many brackets a plain loop is faster than numpy's calls (measured for one 28x28 image's
62: 8 µs in all instead of 17 µs)."""


def json_depth(body: bytes) -> int:
    """Deepest bracket nesting in raw JSON bytes, without parsing (brackets inside strings count too,
    which only errs on the safe side)."""
    return _depth(body.translate(None, _NOT_MARKS))


def _depth(marks: bytes) -> int:
    """Deepest nesting of the brackets in ``marks`` (other bytes are skipped). ``bytes.translate``
    keeps just those first, so the arithmetic runs over a few dozen bytes for an image."""
    if len(marks) > _LOOP_UP_TO:
        return int(np.cumsum(_DEPTH_STEP[np.frombuffer(marks, dtype=np.uint8)]).max())
    depth = deepest = 0
    for mark in marks:  # one image's few dozen brackets: a plain loop beats numpy's call overhead
        if mark == 91 or mark == 123:  # "[" or "{"
            depth += 1
            if depth > deepest:
                deepest = depth
        elif mark == 93 or mark == 125:  # "]" or "}"
            depth -= 1
    return deepest


def parse_json(body: bytes, limits: Limits, *, booleans: bool = False) -> Any:
    """The JSON document in ``body``; ``booleans=False`` refuses true/false anywhere in it (none of
    V1's or the friendly API's fields is one; a protocol with boolean parameters checks its tensors
    with :func:`reject_booleans` instead)."""
    if not body:
        raise InvalidInput("empty body: expected JSON")
    marks = body.translate(None, _NOT_MARKS)  # one pass over the body serves both checks below
    if _depth(marks) > limits.max_json_depth:
        raise InvalidInput(f"JSON nested deeper than {limits.max_json_depth} levels")
    try:
        document = orjson.loads(body)  # fast path; rejects NaN/Infinity tokens and bad UTF-8 itself
    except orjson.JSONDecodeError:
        _explain_rejection(body)
    if not booleans and (b"l" in marks or b"r" in marks) and (b"true" in body or b"false" in body):
        reject_booleans(document)  # rare: only then walk the document
    return document


def _explain_rejection(body: bytes) -> NoReturn:
    """orjson refused ``body``: re-parse with the standard library only to say precisely why."""
    try:
        json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:  # pragma: no cover - the depth scan catches this first
        raise InvalidInput("JSON nested too deeply") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput("body is not UTF-8 text") from exc
    except ValueError as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc
    # The standard library also reads UTF-16/32, skips a byte order mark and turns 1e400 into
    # infinity; JSON between systems is UTF-8 (RFC 8259), and pixels are finite.
    if body.startswith(b"\xef\xbb\xbf") or b"\x00" in body:
        raise InvalidInput("body must be UTF-8 JSON without a byte order mark")
    raise InvalidInput("values must be finite numbers (one is too large for a 64-bit float)")


def reject_booleans(document: Any) -> None:
    """``true``/``false`` are not pixel values (numpy would read them as 1.0 and 0.0)."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, bool):
            raise InvalidInput("expected numbers, got booleans (true/false)")
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())


def check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise InvalidInput("no instances: send at least one image")
    if count > limits.max_instances:
        raise PayloadTooLarge(f"{count} instances in one request; the limit is {limits.max_instances}")


def as_pixels(value: Any, where: str) -> np.ndarray:
    """Numbers (nested lists or an array) as float32 in the input range; InvalidInput saying what is wrong."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise InvalidInput(f"{where}: not a rectangular array of numbers") from exc
    if array.dtype.kind not in "iuf":
        raise InvalidInput(f"{where}: expected numbers, got {_kind(array)}")
    if array.size and not _in_range(array):
        if not np.isfinite(array).all():
            raise InvalidInput(f"{where}: values must be finite")
        raise InvalidInput(f"{where}: values must lie in [{LOW:g}, {HIGH:g}] (pixel / 255)")
    return array.astype(np.float32)


def _in_range(array: np.ndarray) -> bool:
    """Every value within the input range. Checked before the float32 conversion, which would round
    1.0000000000000002 to 1.0; NaN fails too (every comparison with NaN is false), +-inf is out of range."""
    return bool(array.min() >= LOW and array.max() <= HIGH)


def _kind(array: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "O": "mixed or nested values"}.get(
        array.dtype.kind, str(array.dtype)
    )


def _as_batch(array: np.ndarray, where: str) -> np.ndarray:
    """``[N, 28, 28]`` or ``[N, 784]`` -> ``[N, 28, 28]``."""
    if array.ndim == 3 and array.shape[1:] == (SIDE, SIDE):
        return array
    if array.ndim == 2 and array.shape[1] == PIXELS:
        return array.reshape(-1, SIDE, SIDE)
    shape = list(array.shape)
    raise InvalidInput(
        f"{where}: shape {shape[1:] if shape else shape} per image; expected [28, 28] or [784]"
    )


def _one_image(value: Any, where: str) -> np.ndarray:
    array = as_pixels(value, where)
    if array.shape == (PIXELS,):
        return array.reshape(SIDE, SIDE)
    if array.shape != (SIDE, SIDE):
        raise InvalidInput(f"{where}: shape {list(array.shape)}; expected [28, 28] or [784]")
    return array


_SHAPE_MARKS = b'[]{},"'
_NOT_SHAPE_MARKS = bytes(sorted(set(range(256)) - set(_SHAPE_MARKS)))
_IMAGE_ROWS = b"[" + b",".join([b"[" + b"," * (SIDE - 1) + b"]"] * SIDE) + b"]"
_IMAGE_FLAT = b"[" + b"," * (PIXELS - 1) + b"]"
_USUAL_MAX_BYTES = 256 * 1024
"""Bodies up to this size may take :func:`_usual_instances` (a 28x28 image is 5-16 KB of JSON); the
bound also caps the memory each thread's parser keeps."""
_parsers = threading.local()


def _usual_shape(marks: bytes, max_instances: int) -> tuple[int, ...] | None:
    """The shape of ``{"key": N images}`` whose brackets, braces, commas and quote marks are
    ``marks``, when the key is the only string, the images are all 28x28 or all 784 flat numbers and
    1 <= N <= ``max_instances``; else None."""
    opening = marks.count(b"[")
    for image, per_image, shape in ((_IMAGE_ROWS, SIDE + 1, (SIDE, SIDE)), (_IMAGE_FLAT, 1, (PIXELS,))):
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
    if not _in_range(values):
        return None
    return values.astype(np.float32).reshape(shape[0], SIDE, SIDE)


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
            if set(item) != {CONTRACT.input.name}:
                raise InvalidInput(f'instance {index}: expected an object with only "{CONTRACT.input.name}"')
            rows.append(_one_image(item[CONTRACT.input.name], f"instance {index}"))
        return np.stack(rows)
    return _as_batch(as_pixels(value, "instances"), "instances")


def _inputs(value: Any, limits: Limits) -> np.ndarray:
    if isinstance(value, dict):
        if set(value) != {CONTRACT.input.name}:
            raise InvalidInput(f'"inputs" object must have only "{CONTRACT.input.name}"')
        value = value[CONTRACT.input.name]
    if not isinstance(value, list):
        raise InvalidInput('"inputs" must be a list of images or {"image": [...]}')
    check_count(len(value), limits)
    return _as_batch(as_pixels(value, "inputs"), "inputs")


def encode_v1(probabilities: np.ndarray, columnar: bool) -> dict[str, Any]:
    """The TF Serving V1 reply; ``dumps`` serialises the array without a Python list in between."""
    return {"outputs" if columnar else "predictions": probabilities}


# -- friendly endpoint ----------------------------------------------------------------------


def decode_image_bytes(data: bytes, where: str, limits: Limits) -> np.ndarray:
    """PNG/JPEG bytes -> float32 ``[28, 28]`` following the image policy above."""
    if not data:
        raise InvalidInput(f"{where}: empty image")
    try:
        with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
            width, height = image.size
            if max(width, height) > limits.max_image_side:
                raise InvalidInput(
                    f"{where}: image is {width}x{height}; the largest side allowed is {limits.max_image_side}"
                )
            gray = image.convert("L")
            if gray.size != (SIDE, SIDE):
                gray = gray.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
            pixels = np.asarray(gray, dtype=np.float32)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{where}: not a readable PNG or JPEG image") from exc
    return pixels / 255.0


def _decode_base64(text: str, where: str) -> bytes:
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{where}: invalid base64") from exc


def _friendly_item(item: Any, where: str, limits: Limits) -> np.ndarray:
    if isinstance(item, str):
        return decode_image_bytes(_decode_base64(item, where), where, limits)
    if isinstance(item, list):
        return _one_image(item, where)
    raise InvalidInput(f"{where}: expected 28x28 numbers, 784 numbers or a base64 PNG/JPEG string")


def _friendly_json(body: bytes, limits: Limits) -> np.ndarray:
    payload = parse_json(body, limits)
    if not isinstance(payload, dict) or len(payload) != 1 or not {"image", "images"} & set(payload):
        raise InvalidInput('body must be {"image": ...} or {"images": [...]}')
    if "image" in payload:
        return _friendly_item(payload["image"], "image", limits)[np.newaxis]
    items = payload["images"]
    if not isinstance(items, list):
        raise InvalidInput('"images" must be a list')
    check_count(len(items), limits)
    return np.stack([_friendly_item(item, f"images[{i}]", limits) for i, item in enumerate(items)])


def decode_friendly(content_type: str, body: bytes, uploads: list[bytes], limits: Limits) -> np.ndarray:
    """Any friendly form -> ``[N, 28, 28]``; ``uploads`` are the multipart files (already read)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        check_count(len(uploads), limits)
        return np.stack([decode_image_bytes(data, f"file {i}", limits) for i, data in enumerate(uploads)])
    if media in IMAGE_CONTENT_TYPES:
        return decode_image_bytes(body, "body", limits)[np.newaxis]
    if media == "application/json":
        return _friendly_json(body, limits)
    raise UnsupportedMediaType(
        f"content type {media or '(none)'!r} is not accepted; use multipart/form-data, image/png, "
        "image/jpeg or application/json"
    )


def encode_friendly(probabilities: np.ndarray) -> dict[str, Any]:
    digits = probabilities.argmax(axis=1)
    return {
        "predictions": [
            {"digit": int(digit), "probabilities": row.tolist()}
            for digit, row in zip(digits, probabilities, strict=True)
        ]
    }
