"""TorchServe over REST (keep-alive pool) and over gRPC (generated stubs), with bearer tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from gateway import torchserve_proto
from gateway.backends.base import Backend, ModelStatus, Prediction
from gateway.backends.channels import insecure_channel
from gateway.backends.http import CurlTransport, HttpRequest, HttpResponse, HttpTransport
from gateway.backends.torchserve_keys import TokenSource, is_token_rejection
from gateway.backends.translate import error_for_grpc, error_for_http, parse_json_body, parse_probabilities
from gateway.errors import BadBackendResponse, GatewayError
from gateway.jsonio import dumps

if TYPE_CHECKING:
    from gateway.registry import BackendSpec
    from gateway.settings import Settings

__all__ = ["TorchServeGrpcBackend", "TorchServeRestBackend"]

_TOKEN_REJECTED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _probabilities(data: Any, count: int, backend: str) -> np.ndarray:
    if not isinstance(data, dict) or "predictions" not in data:
        raise BadBackendResponse(f"{backend} answered without 'predictions'", backend=backend)
    return parse_probabilities(data["predictions"], count, backend)


def _served(data: Any, requested: int | None) -> str | None:
    """The version that answered: our handler names its archive's version; else the one asked for."""
    served = data.get("model_version") if isinstance(data, dict) else None
    if served is not None:
        return str(served)
    return str(requested) if requested is not None else None


def _tokens(settings: Settings) -> TokenSource:
    return TokenSource(
        settings.torchserve_key_file,
        settings.torchserve_management_url or None,
        static_token=settings.torchserve_token,
    )


class TorchServeRestBackend(Backend):
    framework = "pytorch"

    def __init__(self, name: str, base_url: str, transport: HttpTransport, tokens: TokenSource) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._transport = transport
        self._tokens = tokens

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        transport = CurlTransport(settings.backend_max_response_bytes)
        return cls(entry.name, getattr(settings, entry.address), transport, _tokens(settings))

    def _send(self, make: Callable[[dict[str, str]], HttpRequest]) -> HttpResponse:
        reply = self._transport.send(make(self._tokens.header()))
        if is_token_rejection(
            reply.status, reply.body
        ):  # key renewed since we read it: re-read, try once more
            self._tokens.invalidate()
            reply = self._transport.send(make(self._tokens.header()))
            if is_token_rejection(reply.status, reply.body):
                raise BadBackendResponse(
                    f"{self.name} rejected the gateway's TorchServe key", backend=self.name
                )
        return reply

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        url = f"{self._base}/predictions/{model}" + (f"/{version}" if version is not None else "")
        body = dumps({"instances": images})
        started = time.perf_counter()
        reply = self._send(
            lambda auth: HttpRequest("POST", url, body, {"Content-Type": "application/json", **auth}, timeout)
        )
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise error_for_http(reply.status, reply.body, self.name)
        data = parse_json_body(reply.body, self.name)
        return Prediction(_probabilities(data, len(images), self.name), _served(data, version), elapsed)

    def status(self, model: str, timeout: float) -> ModelStatus:
        """TorchServe's ``/ping`` (frontend and worker health); versions need the management API, not used."""
        try:
            reply = self._send(lambda auth: HttpRequest("GET", f"{self._base}/ping", None, auth, timeout))
        except GatewayError as exc:
            return ModelStatus(False, [], exc.message)
        if reply.status != 200:
            return ModelStatus(False, [], error_for_http(reply.status, reply.body, self.name).message)
        return ModelStatus(True, [], "")

    def close(self) -> None:
        self._transport.close()


class TorchServeGrpcBackend(Backend):
    framework = "pytorch"

    def __init__(
        self, name: str, target: str, tokens: TokenSource, channel: grpc.Channel | None = None
    ) -> None:
        self.name = name
        self._tokens = tokens
        self._messages = torchserve_proto.messages()
        self._channel = channel or insecure_channel(target)
        self._predictions = torchserve_proto.predictions_call(self._channel)
        self._ping = torchserve_proto.ping_call(self._channel)

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        return cls(entry.name, getattr(settings, entry.address), _tokens(settings))

    def _metadata(self) -> list[tuple[str, str]]:
        token = self._tokens.token()
        return [("authorization", f"Bearer {token}")] if token else []

    def _call(self, method: Callable[..., Any], request: Any, timeout: float) -> Any:
        try:
            try:
                return method(request, timeout=max(timeout, 0.001), metadata=self._metadata())
            except grpc.RpcError as exc:
                # TorchServe answers a missing or stale key with PERMISSION_DENIED.
                if getattr(exc, "code", lambda: None)() not in _TOKEN_REJECTED:
                    raise
                self._tokens.invalidate()
                return method(request, timeout=max(timeout, 0.001), metadata=self._metadata())
        except grpc.RpcError as exc:
            raise error_for_grpc(exc, self.name) from exc

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        request = self._messages.PredictionsRequest(
            model_name=model,
            model_version="" if version is None else str(version),
            input={"data": dumps({"instances": images})},
        )
        started = time.perf_counter()
        response = self._call(self._predictions, request, timeout)
        elapsed = time.perf_counter() - started
        data = parse_json_body(response.prediction, self.name)
        return Prediction(_probabilities(data, len(images), self.name), _served(data, version), elapsed)

    def status(self, model: str, timeout: float) -> ModelStatus:
        try:
            response = self._call(self._ping, torchserve_proto.empty_request(), timeout)
        except GatewayError as exc:
            return ModelStatus(False, [], exc.message)
        healthy = "healthy" in response.health.lower() and "unhealthy" not in response.health.lower()
        return ModelStatus(healthy, [], "" if healthy else response.health[:200])

    def close(self) -> None:
        self._channel.close()
