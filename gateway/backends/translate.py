"""Foreign failures -> gateway errors, in one place for every backend module.

Only the status reaches the client; what the backend wrote is kept in ``detail`` for the log.

Mapping (docs/reliability.md): upstream input errors stay 400/404, overload stays 429/503, timeouts
become 504, and anything that means "the backend, not the client, is wrong" (5xx, auth to the
backend failing, a body we cannot read) becomes 502. The client never sees a backend's 401.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import numpy as np

from gateway.codecs.tensors import OUTPUT_SHAPE
from gateway.errors import (
    BadBackendResponse,
    DeadlineExceeded,
    GatewayError,
    InvalidInput,
    NotFound,
    OverCapacity,
    Unavailable,
)
from gateway.jsonio import loads

__all__ = ["error_for_grpc", "error_for_http", "parse_json_body", "parse_probabilities", "upstream_message"]

_HTTP: dict[int, type[GatewayError]] = {
    400: InvalidInput,
    404: NotFound,
    408: DeadlineExceeded,
    413: InvalidInput,
    429: OverCapacity,
    499: Unavailable,
    503: Unavailable,
    504: DeadlineExceeded,
    507: Unavailable,
}

_GRPC: dict[grpc.StatusCode, type[GatewayError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidInput,
    grpc.StatusCode.OUT_OF_RANGE: InvalidInput,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: OverCapacity,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.CANCELLED: Unavailable,
}


def upstream_message(body: bytes) -> str:
    """The human part of a TF Serving ``{"error"}`` or TorchServe ``{code,type,message}`` body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, dict):
        if isinstance(data.get("error"), str):
            return data["error"][:500]
        if isinstance(data.get("message"), str):
            kind = data.get("type")
            return f"{kind}: {data['message']}"[:500] if isinstance(kind, str) else data["message"][:500]
    return str(data)[:200]


def error_for_http(status: int, body: bytes, backend: str) -> GatewayError:
    """The client is told which backend answered what status; the backend's text goes to the log only."""
    cls = _HTTP.get(status, BadBackendResponse)
    return cls(f"{backend} answered HTTP {status}", backend=backend, detail=upstream_message(body))


def error_for_grpc(exc: grpc.RpcError, backend: str) -> GatewayError:
    # Errors raised by a channel are also grpc.Call objects; read them by duck typing so fakes work.
    code_of = getattr(exc, "code", None)
    details_of = getattr(exc, "details", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details = (details_of() if callable(details_of) else "") or ""
    cls = _GRPC.get(code, BadBackendResponse)
    return cls(f"{backend} answered {code.name}", backend=backend, detail=details[:500])


def parse_probabilities(value: object, count: int, backend: str) -> np.ndarray:
    """A backend's ``[N, *output]`` output as float32, or BadBackendResponse naming what is wrong."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BadBackendResponse(f"{backend} returned non-numeric predictions", backend=backend) from exc
    if array.shape != (count, *OUTPUT_SHAPE):
        raise BadBackendResponse(
            f"{backend} returned predictions of shape {list(array.shape)}, expected {[count, *OUTPUT_SHAPE]}",
            backend=backend,
        )
    if not np.isfinite(array).all():
        raise BadBackendResponse(f"{backend} returned non-finite predictions", backend=backend)
    return array


def parse_json_body(body: bytes, backend: str) -> Any:
    try:
        return loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBackendResponse(f"{backend} returned a body that is not JSON", backend=backend) from exc
