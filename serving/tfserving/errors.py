"""Errors of the TF-Serving-compatible development server, carrying TF Serving's canonical codes.

ServingError      one failure with a :class:`Code`; REST renders it as ``{"error": message}`` with
                  :attr:`ServingError.http_status`, gRPC aborts with :attr:`ServingError.grpc_status`.

The HTTP mapping is the one TF Serving's REST server applies to its canonical codes.
"""

from __future__ import annotations

import enum

import grpc


class Code(enum.IntEnum):
    """Canonical error codes (``tensorflow/core/protobuf/error_codes.proto``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


_HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.UNAUTHENTICATED: 401,
}


def http_status(code: Code) -> int:
    """The HTTP status TF Serving's REST API answers for ``code`` (500 when unlisted)."""
    return _HTTP_STATUS.get(code, 500)


class ServingError(Exception):
    """A request failed with a canonical ``code``; ``message`` is what the client sees."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.code.name]


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)
