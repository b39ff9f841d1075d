"""The gateway's errors: one base class carrying the HTTP status, rendered by one handler.

Exception tree (status, ``code`` in the envelope)::

    GatewayError                500 internal                 base; anything unexpected ends up here
    ├── InvalidInput            400 invalid_input            bad body: shape, type, range, NaN, nesting
    ├── Unauthorized            401 unauthorized             missing or wrong API key / admin token
    ├── NotFound                404 not_found                unknown route, model, version or label
    ├── MethodNotAllowed        405 method_not_allowed
    ├── RequestTimeout          408 request_timeout          the request body arrived too slowly
    ├── PayloadTooLarge         413 payload_too_large        body above the size limit, too many instances
    ├── UnsupportedMediaType    415 unsupported_media_type   wrong content type or content encoding
    ├── OverCapacity            429 over_capacity            too many requests in flight (``Retry-After``)
    ├── UnsupportedTransferCoding 501 not_implemented        a Transfer-Encoding other than chunked
    ├── BadBackendResponse      502 bad_backend_response     a backend answered something unusable
    ├── Unavailable             503 unavailable              no ready backend, refused (``Retry-After``)
    └── DeadlineExceeded        504 deadline_exceeded        the request's deadline (or one attempt's) ran out

Backend modules translate foreign failures (HTTP bodies, gRPC statuses, socket errors) into these
classes at their boundary (``raise Unavailable(...) from exc``); ``retryable`` tells the router whether
another backend may be tried. The envelope is ``{"error": {"code", "message", "request_id"}}``;
a traceback never reaches a client, and neither does a backend's own error text (``detail``, logged
with the request id).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadBackendResponse",
    "DeadlineExceeded",
    "GatewayError",
    "InvalidInput",
    "MethodNotAllowed",
    "NotFound",
    "OverCapacity",
    "PayloadTooLarge",
    "RequestTimeout",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "UnsupportedTransferCoding",
    "envelope",
]


class GatewayError(Exception):
    """Base error: an HTTP status, a stable machine-readable code and a message safe to show."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False
    retry_after_s: ClassVar[int | None] = None

    def __init__(
        self, message: str = "internal error", *, backend: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.detail = detail
        """What a backend said, for the log only: its text may hold tracebacks, paths or secrets."""

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


class InvalidInput(GatewayError):
    status, code = 400, "invalid_input"


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(GatewayError):
    status, code = 404, "not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class RequestTimeout(GatewayError):
    status, code = 408, "request_timeout"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"

    @classmethod
    def declared(cls, length: int, limit: int) -> PayloadTooLarge:
        """A body whose declared length is over the limit (the same words wherever it is refused)."""
        return cls(f"body of {length} bytes; the limit is {limit} bytes")


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class OverCapacity(GatewayError):
    status, code, retryable, retry_after_s = 429, "over_capacity", True, 1


class UnsupportedTransferCoding(GatewayError):
    status, code = 501, "not_implemented"


class BadBackendResponse(GatewayError):
    status, code, retryable = 502, "bad_backend_response", True


class Unavailable(GatewayError):
    status, code, retryable, retry_after_s = 503, "unavailable", True, 1


class DeadlineExceeded(GatewayError):
    status, code, retryable = 504, "deadline_exceeded", True


_BY_STATUS: dict[int, type[GatewayError]] = {
    cls.status: cls
    for cls in (
        InvalidInput,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        RequestTimeout,
        PayloadTooLarge,
        UnsupportedMediaType,
        OverCapacity,
        UnsupportedTransferCoding,
        BadBackendResponse,
        Unavailable,
        DeadlineExceeded,
    )
}


def for_status(status: int) -> type[GatewayError]:
    """Our class for an HTTP status (used for framework errors such as Werkzeug's 404/405/413)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InvalidInput if 400 <= status < 500 else GatewayError


def envelope(error: GatewayError, request_id: str) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message, "request_id": request_id}}
