"""TorchServe handler for the MNIST TorchScript module; shipped inside the .mar.

It runs inside TorchServe's Python worker, where only this file, the serialized model and
TorchServe's own packages are importable: it must not import anything from this project.

Each request in TorchServe's batch may carry:
- JSON ``{"instances": [...]}`` (or ``{"inputs": [...]}``): one image or a list of images,
  each 28x28 nested lists or 784 flat values in [0, 1];
- raw PNG/JPEG bytes of one 28x28 grayscale digit (pixels 0-255, white on black).

Every request gets its own answer ``{"predictions": [[p0..p9], ...], "digits": [d, ...]}``;
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


class InvalidInput(ValueError):
    """The request body is not a valid MNIST input; the message says why."""


def _as_image_array(instance: Any, index: int) -> np.ndarray:
    try:
        array = np.asarray(instance, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"instance {index}: not a numeric array ({exc})") from exc
    if array.shape == (IMAGE_SIDE * IMAGE_SIDE,):
        array = array.reshape(IMAGE_SIDE, IMAGE_SIDE)
    if array.shape != (IMAGE_SIDE, IMAGE_SIDE):
        raise InvalidInput(f"instance {index}: shape {list(array.shape)}, expected [28, 28] or [784]")
    if not np.isfinite(array).all():
        raise InvalidInput(f"instance {index}: contains NaN or Infinity")
    if array.min() < 0.0 or array.max() > 1.0:
        raise InvalidInput(f"instance {index}: values must lie in [0, 1] (pixel / 255)")
    return array


def decode_json(payload: Any) -> np.ndarray:
    """``{"instances": ...}`` or ``{"inputs": ...}`` -> float32 [N, 28, 28]."""
    if not isinstance(payload, dict):
        raise InvalidInput('JSON body must be an object with "instances" or "inputs"')
    keys = [key for key in ("instances", "inputs") if key in payload]
    if len(keys) != 1:
        raise InvalidInput('JSON body must have exactly one of "instances" or "inputs"')
    instances = payload[keys[0]]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f'"{keys[0]}" must be a non-empty list')
    if _is_single_image(instances):
        instances = [instances]
    if len(instances) > MAX_IMAGES_PER_REQUEST:
        raise InvalidInput(f"{len(instances)} images in one request; the limit is {MAX_IMAGES_PER_REQUEST}")
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
                raise InvalidInput(f"image is {image.size[0]}x{image.size[1]}, expected 28x28")
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"body is neither JSON nor a readable PNG/JPEG image ({exc})") from exc
    return (pixels / 255.0)[np.newaxis]


def decode_request(request: dict[str, Any]) -> np.ndarray:
    body = request.get("data")
    if body is None:
        body = request.get("body")
    if body is None:
        raise InvalidInput("empty request")
    if isinstance(body, (dict, list)):
        return decode_json(body)
    if isinstance(body, str):
        body = body.encode()
    data = bytes(body)
    if data[:1] in (b"{", b"["):
        try:
            parsed = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput(f"malformed JSON: {exc}") from exc
        return decode_json(parsed)
    return decode_image(data)


def _reject_constant(token: str) -> float:
    raise InvalidInput(f"JSON token {token} is not a valid pixel value")


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

    def preprocess(self, data: list[dict[str, Any]]) -> list[np.ndarray | InvalidInput]:
        decoded: list[np.ndarray | InvalidInput] = []
        for request in data:
            try:
                decoded.append(decode_request(request))
            except InvalidInput as exc:
                decoded.append(exc)
        return decoded

    def inference(self, data: list[np.ndarray | InvalidInput], *args: Any, **kwargs: Any) -> list[Any]:
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
            if isinstance(item, InvalidInput):
                self.context.set_response_status(400, str(item), idx=index)
                responses.append({"code": 400, "type": "InvalidInput", "message": str(item)})
                continue
            responses.append(
                {
                    "predictions": item.tolist(),
                    "digits": [int(digit) for digit in item.argmax(axis=1)],
                }
            )
        return responses
