"""TensorFlow Serving over REST (keep-alive pool) and over gRPC (one long-lived channel per worker)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from gateway import tfserving_proto
from gateway.backends.base import Backend, ModelStatus, Prediction
from gateway.backends.channels import insecure_channel
from gateway.backends.http import CurlTransport, HttpRequest, HttpTransport
from gateway.backends.translate import error_for_grpc, error_for_http, parse_json_body, parse_probabilities
from gateway.codecs.tensors import OUTPUT_SHAPE, OUTPUT_SIZE
from gateway.codecs.tf_tensor import fill_tensor_proto
from gateway.errors import BadBackendResponse, GatewayError
from gateway.jsonio import dumps
from model_store import CONTRACT

if TYPE_CHECKING:
    from gateway.registry import BackendSpec
    from gateway.settings import Settings

__all__ = ["TFServingGrpcBackend", "TFServingRestBackend"]

_JSON = {"Content-Type": "application/json"}


def _model_path(model: str, version: int | None) -> str:
    return f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")


def _available_versions(data: Any) -> list[int]:
    statuses = data.get("model_version_status") if isinstance(data, dict) else None
    if not isinstance(statuses, list):
        return []
    versions = []
    for entry in statuses:
        if (
            isinstance(entry, dict)
            and entry.get("state") == "AVAILABLE"
            and str(entry.get("version")).isdigit()
        ):
            versions.append(int(entry["version"]))
    return sorted(versions)


_LATEST_VERSION_TTL_S = 5.0


class TFServingRestBackend(Backend):
    framework = "tensorflow"

    def __init__(self, name: str, base_url: str, transport: HttpTransport) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._transport = transport
        self._latest: dict[str, tuple[str | None, float]] = {}

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        transport = CurlTransport(settings.backend_max_response_bytes)
        return cls(entry.name, getattr(settings, entry.address), transport)

    def _latest_version(self, model: str, timeout: float) -> str | None:
        """TF Serving's REST predict does not say which version answered; without an explicit
        version it serves the highest AVAILABLE one, which the status API tells (cached briefly)."""
        cached = self._latest.get(model)
        now = time.monotonic()
        if cached is not None and now - cached[1] < _LATEST_VERSION_TTL_S:
            return cached[0]
        versions = self.status(model, min(timeout, 0.5)).versions
        latest = str(max(versions)) if versions else None
        self._latest[model] = (latest, now)
        return latest

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        body = dumps({"instances": images})
        started = time.perf_counter()
        reply = self._transport.send(
            HttpRequest("POST", self._base + _model_path(model, version) + ":predict", body, _JSON, timeout)
        )
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise error_for_http(reply.status, reply.body, self.name)
        data = parse_json_body(reply.body, self.name)
        if not isinstance(data, dict) or "predictions" not in data:
            raise BadBackendResponse(f"{self.name} answered without 'predictions'", backend=self.name)
        probabilities = parse_probabilities(data["predictions"], len(images), self.name)
        served = str(version) if version is not None else self._latest_version(model, timeout)
        return Prediction(probabilities, served, elapsed)

    def status(self, model: str, timeout: float) -> ModelStatus:
        try:
            reply = self._transport.send(
                HttpRequest("GET", self._base + _model_path(model, None), None, {}, timeout)
            )
        except GatewayError as exc:
            return ModelStatus(False, [], exc.message)
        if reply.status != 200:
            return ModelStatus(False, [], error_for_http(reply.status, reply.body, self.name).message)
        try:
            versions = _available_versions(json.loads(reply.body))
        except ValueError:
            return ModelStatus(False, [], "status body is not JSON")
        return ModelStatus(bool(versions), versions, "" if versions else "no version AVAILABLE")

    def close(self) -> None:
        self._transport.close()


class TFServingGrpcBackend(Backend):
    """PredictionService/ModelService, spoken with :mod:`gateway.tfserving_proto` (no TensorFlow)."""

    framework = "tensorflow"

    def __init__(self, name: str, target: str, channel: grpc.Channel | None = None) -> None:
        self.name = name
        self._channel = channel or insecure_channel(
            target, ("grpc.max_receive_message_length", 64 * 1024 * 1024)
        )
        self._messages = tfserving_proto.messages()
        self._predict = tfserving_proto.unary_call(
            self._channel, tfserving_proto.PREDICTION_SERVICE, "Predict", "PredictResponse"
        )
        self._model_status = tfserving_proto.unary_call(
            self._channel, tfserving_proto.MODEL_SERVICE, "GetModelStatus", "GetModelStatusResponse"
        )

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        return cls(entry.name, getattr(settings, entry.address))

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        request = self._messages.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = CONTRACT.signature_name
        if version is not None:
            request.model_spec.version.value = version
        fill_tensor_proto(request.inputs[CONTRACT.input.name], images)  # in place: no TensorProto copied in
        started = time.perf_counter()
        try:
            response = self._predict(request, timeout=max(timeout, 0.001))
        except grpc.RpcError as exc:
            raise error_for_grpc(exc, self.name) from exc
        elapsed = time.perf_counter() - started
        if CONTRACT.output.name not in response.outputs:
            raise BadBackendResponse(
                f"{self.name} answered without '{CONTRACT.output.name}'", backend=self.name
            )
        output = response.outputs[CONTRACT.output.name]
        if output.tensor_content:
            values: Any = np.frombuffer(output.tensor_content, dtype="<f4")
        else:
            values = np.asarray(output.float_val, dtype=np.float32)
        if values.size != len(images) * OUTPUT_SIZE:
            raise BadBackendResponse(f"{self.name} returned {values.size} values", backend=self.name)
        probabilities = parse_probabilities(
            values.reshape(len(images), *OUTPUT_SHAPE), len(images), self.name
        )
        served = response.model_spec.version.value if response.model_spec.HasField("version") else version
        return Prediction(probabilities, str(served) if served is not None else None, elapsed)

    def status(self, model: str, timeout: float) -> ModelStatus:
        request = self._messages.GetModelStatusRequest()
        request.model_spec.name = model
        try:
            response = self._model_status(request, timeout=max(timeout, 0.001))
        except grpc.RpcError as exc:
            return ModelStatus(False, [], error_for_grpc(exc, self.name).message)
        versions = sorted(
            int(s.version) for s in response.model_version_status if s.state == tfserving_proto.AVAILABLE
        )
        return ModelStatus(bool(versions), versions, "" if versions else "no version AVAILABLE")

    def close(self) -> None:
        self._channel.close()
