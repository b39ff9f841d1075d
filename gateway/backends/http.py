"""An injectable HTTP transport: urllib3 keep-alive pools in production, a function in unit tests."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import urllib3

from gateway.errors import DeadlineExceeded, Unavailable

__all__ = ["FunctionTransport", "HttpRequest", "HttpResponse", "HttpTransport", "PooledTransport"]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 1.0


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpTransport(abc.ABC):
    """Sends one request; connection failures become Unavailable, timeouts DeadlineExceeded."""

    @abc.abstractmethod
    def send(self, request: HttpRequest) -> HttpResponse: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class PooledTransport(HttpTransport):
    """urllib3 PoolManager shared by the threads of one worker; no retries (the router decides)."""

    def __init__(self, maxsize: int = 32) -> None:
        self._pool = urllib3.PoolManager(num_pools=8, maxsize=maxsize, block=False, retries=False)

    def send(self, request: HttpRequest) -> HttpResponse:
        timeout = max(request.timeout, 0.001)
        try:
            reply = self._pool.request(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                timeout=urllib3.Timeout(connect=min(timeout, 1.0), read=timeout),
                redirect=False,
                preload_content=True,
            )
        except urllib3.exceptions.NewConnectionError as exc:
            # Checked first: urllib3 2 derives it from ConnectTimeoutError, but "connection refused"
            # means the backend is down (503), not slow (504).
            raise Unavailable(f"cannot reach the backend: {exc.__class__.__name__}") from exc
        except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
            raise DeadlineExceeded(f"no answer within {timeout:.3f} s") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"cannot reach the backend: {type(exc).__name__}") from exc
        return HttpResponse(status=reply.status, body=reply.data, headers=dict(reply.headers))

    def close(self) -> None:
        self._pool.clear()


class FunctionTransport(HttpTransport):
    """Answers with a plain function: unit tests inject one instead of opening sockets."""

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse]) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.handler(request)
