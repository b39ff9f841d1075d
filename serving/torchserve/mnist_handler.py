"""TorchServe handler for the MNIST TorchScript module; shipped inside the .mar.

It runs inside TorchServe's Python worker, where only this file, the serialized model and
TorchServe's own packages are importable: it must not import anything from this project.
TorchServe's loader also requires exactly one class in this module (the handler), so
invalid input travels as ``ValueError`` and then as a plain message string.

Each request in TorchServe's batch may carry:
- JSON ``{"instances": [...]}`` (or ``{"inputs": [...]}``): one image or a list of images,
  each 28x28 nested lists or 784 flat values in [0, 1];
- raw PNG/JPEG bytes of one 28x28 grayscale digit (pixels 0-255, white on black).

Every request gets its own answer
``{"predictions": [[p0..p9], ...], "digits": [d, ...], "model_version": "<archive version>"}``;
a malformed request gets status 400 with TorchServe's error shape, without failing the
other requests in the batch.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from ts.torch_handler.base_handler import BaseHandler

IMAGE_SIDE = 28
MAX_IMAGES_PER_REQUEST = 1024


def _as_image_array(instance: Any, index: int) -> np.ndarray:
    try:
        array = np.asarray(instance, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"instance {index}: not a numeric array ({exc})") from exc
    if array.shape == (IMAGE_SIDE * IMAGE_SIDE,):
        array = array.reshape(IMAGE_SIDE, IMAGE_SIDE)
    if array.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"instance {index}: shape {list(array.shape)}, expected [28, 28] or [784]")
    if not np.isfinite(array).all():
        raise ValueError(f"instance {index}: contains NaN or Infinity")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"instance {index}: values must lie in [0, 1] (pixel / 255)")
    return array


def decode_json(payload: Any) -> np.ndarray:
    """``{"instances": ...}`` or ``{"inputs": ...}`` -> float32 [N, 28, 28]."""
    if not isinstance(payload, dict):
        raise ValueError('JSON body must be an object with "instances" or "inputs"')
    keys = [key for key in ("instances", "inputs") if key in payload]
    if len(keys) != 1:
        raise ValueError('JSON body must have exactly one of "instances" or "inputs"')
    instances = payload[keys[0]]
    if not isinstance(instances, list) or not instances:
        raise ValueError(f'"{keys[0]}" must be a non-empty list')
    if _is_single_image(instances):
        instances = [instances]
    if len(instances) > MAX_IMAGES_PER_REQUEST:
        raise ValueError(f"{len(instances)} images in one request; the limit is {MAX_IMAGES_PER_REQUEST}")
    return np.stack([_as_image_array(instance, index) for index, instance in enumerate(instances)])


def _is_single_image(instances: list[Any]) -> bool:
    """A bare 28x28 image or one flat 784 vector, rather than a list of images."""
    first = instances[0]
    if isinstance(first, (int, float)):
        return len(instances) == IMAGE_SIDE * IMAGE_SIDE
    return (
        len(instances) == IMAGE_SIDE
        and isinstance(first, list)
        and len(first) == IMAGE_SIDE
        and all(isinstance(value, (int, float)) for value in first)
    )


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes of a 28x28 digit -> float32 [1, 28, 28]."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size != (IMAGE_SIDE, IMAGE_SIDE):
                raise ValueError(f"image is {image.size[0]}x{image.size[1]}, expected 28x28")
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"body is neither JSON nor a readable PNG/JPEG image ({exc})") from exc
    return (pixels / 255.0)[np.newaxis]


def decode_request(request: dict[str, Any]) -> np.ndarray:
    body = request.get("data")
    if body is None:
        body = request.get("body")
    if body is None:
        # TorchServe turns form-encoded bodies (curl --data without a Content-Type) into fields.
        raise ValueError(
            "no request body found: send JSON with Content-Type: application/json, "
            "or the bytes of a PNG/JPEG image (e.g. curl -T digit.png)"
        )
    if isinstance(body, (dict, list)):
        return decode_json(body)
    if isinstance(body, str):
        body = body.encode()
    data = bytes(body)
    if data[:1] in (b"{", b"["):
        try:
            parsed = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"malformed JSON: {exc}") from exc
        return decode_json(parsed)
    return decode_image(data)


def _reject_constant(token: str) -> float:
    raise ValueError(f"JSON token {token} is not a valid pixel value")


class MnistHandler(BaseHandler):
    """Template-method handler: only loading, decoding and encoding are ours."""

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        gpu_id = properties.get("gpu_id")
        if torch.cuda.is_available() and gpu_id is not None:
            self.device = torch.device(f"cuda:{gpu_id}")
        else:
            self.device = torch.device("cpu")
        serialized = context.manifest["model"]["serializedFile"]
        model_path = os.path.join(properties["model_dir"], serialized)
        self.model = torch.jit.load(model_path, map_location=self.device).eval()
        self.initialized = True

    def preprocess(self, data: list[dict[str, Any]]) -> list[np.ndarray | str]:
        """Each request becomes an image batch, or the message saying why it is invalid."""
        decoded: list[np.ndarray | str] = []
        for request in data:
            try:
                decoded.append(decode_request(request))
            except ValueError as exc:
                decoded.append(str(exc))
        return decoded

    def inference(self, data: list[np.ndarray | str], *args: Any, **kwargs: Any) -> list[Any]:
        images = [item for item in data if isinstance(item, np.ndarray)]
        if not images:
            return list(data)
        batch = torch.from_numpy(np.concatenate(images)).to(self.device)
        with torch.inference_mode():
            probabilities = self.model(batch).cpu().numpy()
        results: list[Any] = []
        offset = 0
        for item in data:
            if isinstance(item, np.ndarray):
                results.append(probabilities[offset : offset + len(item)])
                offset += len(item)
            else:
                results.append(item)
        return results

    def postprocess(self, data: list[Any]) -> list[dict[str, Any]]:
        responses: list[dict[str, Any]] = []
        for index, item in enumerate(data):
            if isinstance(item, str):
                self.context.set_response_status(400, item, idx=index)
                responses.append({"code": 400, "type": "InvalidInput", "message": item})
                continue
            responses.append(
                {
                    "predictions": item.tolist(),
                    "digits": [int(digit) for digit in item.argmax(axis=1)],
                    "model_version": self.context.manifest["model"].get("modelVersion"),
                }
            )
        return responses
