"""Response checks shared by every User class and the runner's preflight: status, shape, the digit.

Each check returns ``None`` for a correct answer or a short reason that becomes the failure's name
in Locust and in the report (kept short and stable so that failures group by cause).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "check_gateway_headers",
    "check_json_predictions",
    "check_probabilities",
    "check_rest_prediction",
    "check_status",
    "check_v2_outputs",
]

NUM_CLASSES = 10
_SUM_TOLERANCE = 1e-3


_REQUEST_ID = re.compile(r',?\s*"request_id"\s*:\s*"[^"]*"')


def check_status(status: int, body: bytes) -> str | None:
    if status == 200:
        return None
    # Without the request id a gateway puts in each error, one failure reason stays one line.
    text = _REQUEST_ID.sub("", body[:400].decode("utf-8", errors="replace"))
    excerpt = text[:120].replace("\n", " ")
    return f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"


def check_probabilities(values: Sequence[float], label: int) -> str | None:
    """Ten finite probabilities summing to 1 whose largest is the expected digit."""
    if len(values) != NUM_CLASSES:
        return f"shape: {len(values)} values, expected {NUM_CLASSES}"
    try:
        floats = [float(value) for value in values]
    except (TypeError, ValueError):
        return "shape: non-numeric probabilities"
    if not all(math.isfinite(value) and -1e-6 <= value <= 1 + 1e-6 for value in floats):
        return "probabilities outside [0, 1]"
    if abs(sum(floats) - 1.0) > _SUM_TOLERANCE:
        return "probabilities do not sum to 1"
    predicted = max(range(NUM_CLASSES), key=floats.__getitem__)
    if predicted != label:
        return f"wrong digit: {predicted} for a {label}"
    return None


def check_json_predictions(body: bytes, label: int, *, digits_field: bool = False) -> str | None:
    """``{"predictions": [[10 floats]]}`` (TorchServe adds ``"digits": [d]``, checked when asked)."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return "body is not JSON"
    predictions = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(predictions, list) or len(predictions) != 1 or not isinstance(predictions[0], list):
        return "shape: expected predictions [[10 values]]"
    problem = check_probabilities(predictions[0], label)
    if problem is None and digits_field:
        digits = data.get("digits")
        if digits != [label]:
            return f"wrong digit in 'digits': {digits} for a {label}"
    return problem


def check_rest_prediction(body: bytes, label: int, api: str) -> str | None:
    """A REST answer in ``api``'s format (V2 outputs, or TF Serving / TorchServe predictions)."""
    if api == "v2":
        return check_v2_outputs(body, label)
    return check_json_predictions(body, label, digits_field=api == "torchserve")


def check_gateway_headers(headers: Mapping[str, str], backend: str) -> str | None:
    """The gateway must have answered from the backend we chose (a failover would mix two stacks)."""
    served = headers.get("X-Gateway-Backend") or headers.get("x-gateway-backend")
    if served != backend:
        return f"served by {served or 'no backend header'}, not {backend}"
    return None


def check_v2_outputs(body: bytes, label: int) -> str | None:
    """An Open Inference Protocol answer: ``{"outputs": [{"name": "probabilities", "data": [10]}]}``."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return "body is not JSON"
    outputs = data.get("outputs") if isinstance(data, dict) else None
    tensor = next(
        (o for o in outputs or [] if isinstance(o, dict) and o.get("name") == "probabilities"), None
    )
    if tensor is None or not isinstance(tensor.get("data"), list):
        return "shape: expected outputs [{name: probabilities, data: [10 values]}]"
    return check_probabilities(tensor["data"], label)
