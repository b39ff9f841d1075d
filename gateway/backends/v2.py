"""Any Open Inference Protocol (KServe V2) server as a backend: Triton, KServe runtimes, MLServer, or
another gateway. REST sends the binary tensor data extension (no JSON number formatting either way);
gRPC sends ``raw_input_contents`` on the ``inference.GRPCInferenceService`` stubs that ship in
``tritonclient``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as v2
from tritonclient.grpc import service_pb2_grpc as v2_grpc

from gateway.backends.base import Backend, ModelStatus, Prediction
from gateway.backends.channels import insecure_channel
from gateway.backends.http import CurlTransport, HttpRequest, HttpTransport
from gateway.backends.translate import error_for_grpc, error_for_http, parse_json_body, parse_probabilities
from gateway.codecs.tensors import OUTPUT_SHAPE, OUTPUT_SIZE
from gateway.errors import BadBackendResponse, GatewayError
from gateway.jsonio import dumps
from model_store import CONTRACT

if TYPE_CHECKING:
    from gateway.registry import BackendSpec
    from gateway.settings import Settings

__all__ = ["V2GrpcBackend", "V2RestBackend"]

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT, OUTPUT = CONTRACT.input.name, CONTRACT.output.name


def _path(model: str, version: int | None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "")


def _versions(metadata: Any) -> list[int]:
    versions = metadata.get("versions") if isinstance(metadata, dict) else None
    return sorted(int(v) for v in versions or [] if str(v).isdigit())


class V2RestBackend(Backend):
    def __init__(self, name: str, base_url: str, transport: HttpTransport, framework: str) -> None:
        self.name = name
        self.framework = framework
        self._base = base_url.rstrip("/")
        self._transport = transport

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        transport = CurlTransport(settings.backend_max_response_bytes)
        return cls(entry.name, getattr(settings, entry.address), transport, entry.framework)

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        raw = np.ascontiguousarray(images, dtype="<f4").tobytes()
        head = dumps(
            {
                "inputs": [
                    {
                        "name": INPUT,
                        "datatype": "FP32",
                        "shape": list(images.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "outputs": [{"name": OUTPUT, "parameters": {"binary_data": True}}],
            }
        )
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
        url = self._base + _path(model, version) + "/infer"
        started = time.perf_counter()
        reply = self._transport.send(HttpRequest("POST", url, head + raw, headers, timeout))
        elapsed = time.perf_counter() - started
        if reply.status != 200:
            raise error_for_http(reply.status, reply.body, self.name)
        probabilities, served = self._decode(reply.body, len(images))
        return Prediction(probabilities, served or (str(version) if version is not None else None), elapsed)

    def _decode(self, body: bytes, count: int) -> tuple[np.ndarray, str | None]:
        """The answer's ``probabilities``, binary or JSON; the header's length is found in the body
        itself (a JSON object ends where its braces balance) when no header says it."""
        size = _json_prefix_length(body)
        document = parse_json_body(body[:size], self.name)
        outputs = document.get("outputs") if isinstance(document, dict) else None
        tensor = next((o for o in outputs or [] if isinstance(o, dict) and o.get("name") == OUTPUT), None)
        if tensor is None:
            raise BadBackendResponse(f"{self.name} answered without {OUTPUT!r}", backend=self.name)
        binary = (tensor.get("parameters") or {}).get("binary_data_size")
        if binary is not None:
            raw = body[size : size + int(binary)]
            if len(raw) != count * OUTPUT_SIZE * 4:
                raise BadBackendResponse(f"{self.name} sent {len(raw)} output bytes", backend=self.name)
            values: Any = np.frombuffer(raw, dtype="<f4").reshape(count, *OUTPUT_SHAPE)
        else:
            values = np.asarray(tensor.get("data"), dtype=np.float32).reshape(count, -1)
        served = document.get("model_version") or None
        return parse_probabilities(values, count, self.name), served

    def status(self, model: str, timeout: float) -> ModelStatus:
        try:
            ready = self._transport.send(
                HttpRequest("GET", self._base + _path(model, None) + "/ready", None, {}, timeout)
            )
            if ready.status != 200:
                return ModelStatus(False, [], error_for_http(ready.status, ready.body, self.name).message)
            meta = self._transport.send(
                HttpRequest("GET", self._base + _path(model, None), None, {}, timeout)
            )
        except GatewayError as exc:
            return ModelStatus(False, [], exc.message)
        versions = _versions(parse_json_body(meta.body, self.name)) if meta.status == 200 else []
        return ModelStatus(True, versions, "")

    def close(self) -> None:
        self._transport.close()


def _json_prefix_length(body: bytes) -> int:
    """Length of the JSON object that starts ``body`` (V2 binary answers put raw bytes after it)."""
    depth, in_string, escaped = 0, False, False
    for index, byte in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte == 0x7B:  # {
            depth += 1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                return index + 1
    return len(body)


class V2GrpcBackend(Backend):
    def __init__(self, name: str, target: str, framework: str, channel: grpc.Channel | None = None) -> None:
        self.name = name
        self.framework = framework
        self._channel = channel or insecure_channel(target)
        self._stub = v2_grpc.GRPCInferenceServiceStub(self._channel)

    @classmethod
    def from_settings(cls, entry: BackendSpec, settings: Settings) -> Backend:
        return cls(entry.name, getattr(settings, entry.address), entry.framework)

    def predict(self, model: str, images: np.ndarray, version: int | None, timeout: float) -> Prediction:
        request = v2.ModelInferRequest(
            model_name=model,
            model_version="" if version is None else str(version),
            inputs=[
                v2.ModelInferRequest.InferInputTensor(name=INPUT, datatype="FP32", shape=list(images.shape))
            ],
            outputs=[v2.ModelInferRequest.InferRequestedOutputTensor(name=OUTPUT)],
            raw_input_contents=[np.ascontiguousarray(images, dtype="<f4").tobytes()],
        )
        started = time.perf_counter()
        try:
            response = self._stub.ModelInfer(request, timeout=max(timeout, 0.001))
        except grpc.RpcError as exc:
            raise error_for_grpc(exc, self.name) from exc
        elapsed = time.perf_counter() - started
        names = [tensor.name for tensor in response.outputs]
        if OUTPUT not in names:
            raise BadBackendResponse(f"{self.name} answered without {OUTPUT!r}", backend=self.name)
        index = names.index(OUTPUT)
        if response.raw_output_contents:
            values: Any = np.frombuffer(response.raw_output_contents[index], dtype="<f4")
        else:
            values = np.asarray(response.outputs[index].contents.fp32_contents, dtype=np.float32)
        if values.size != len(images) * OUTPUT_SIZE:
            raise BadBackendResponse(f"{self.name} sent {values.size} output values", backend=self.name)
        probabilities = parse_probabilities(
            values.reshape(len(images), *OUTPUT_SHAPE), len(images), self.name
        )
        served = response.model_version or (str(version) if version is not None else None)
        return Prediction(probabilities, served, elapsed)

    def status(self, model: str, timeout: float) -> ModelStatus:
        try:
            ready = self._stub.ModelReady(v2.ModelReadyRequest(name=model), timeout=max(timeout, 0.001))
            if not ready.ready:
                return ModelStatus(False, [], f"{self.name}: model {model} not ready")
            meta = self._stub.ModelMetadata(v2.ModelMetadataRequest(name=model), timeout=max(timeout, 0.001))
        except grpc.RpcError as exc:
            return ModelStatus(False, [], error_for_grpc(exc, self.name).message)
        return ModelStatus(True, sorted(int(v) for v in meta.versions if v.isdigit()), "")

    def close(self) -> None:
        self._channel.close()
