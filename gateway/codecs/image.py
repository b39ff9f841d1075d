"""The friendly image API: multipart upload(s), a raw ``image/png`` / ``image/jpeg`` body, or JSON
``{"image": x}`` / ``{"images": [x, ...]}`` where ``x`` is 28x28 numbers, 784 numbers or a base64
PNG/JPEG string (a ``data:`` URL is fine), answered with one ``{"digit", "probabilities"}`` per image.

Image policy: PNG and JPEG only; any mode is converted to 8-bit grayscale (alpha dropped); an image that
is not 28x28 is resized to 28x28 (Lanczos) if neither side exceeds ``max_image_side``, else rejected.
Digits must be light on a dark background like MNIST; nothing is inverted.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from gateway.codecs.json_body import Limits, check_count, parse_json
from gateway.codecs.tensors import one_item
from gateway.errors import InvalidInput, UnsupportedMediaType

__all__ = ["IMAGE_CONTENT_TYPES", "decode_friendly", "decode_image_bytes", "encode_friendly"]

IMAGE_CONTENT_TYPES = ("image/png", "image/jpeg")
SIDE = 28
"""The MNIST models' image side: this codec is the one place that prepares images for them."""
_IMAGE_FORMATS = ("PNG", "JPEG")


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
        return one_item(item, where)
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
