"""gRPC at the gateway: the Open Inference Protocol's ``inference.GRPCInferenceService`` and TF Serving's
``PredictionService`` + ``ModelService``, so ``tritonclient.grpc`` and ``tensorflow-serving-api``'s stubs
work against the gateway unchanged.

Each worker process runs one server on ``GATEWAY_GRPC_BIND`` (the workers share the port through
SO_REUSEPORT; the launcher checks first that no other process holds it). A call goes through the same
data plane as HTTP (routing, splits, shadow, failover, batching), with the client's deadline (capped
at ``GATEWAY_DEADLINE_S``), API keys from the ``x-api-key`` or ``authorization: Bearer`` metadata, an
explicit backend from ``x-gateway-backend``, the same metrics, and standard status codes.

Stubs: the V2 service's generated modules ship in ``tritonclient`` (package ``inference``, Triton's
superset of the KServe V2 proto); TF Serving's messages come from :mod:`gateway.tfserving_proto`, which
needs no TensorFlow. RPCs not listed here answer UNIMPLEMENTED.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as v2
from tritonclient.grpc import service_pb2_grpc as v2_grpc

from gateway import tfserving_proto
from gateway.calls import Call, finish_call, log_refusal, start_call
from gateway.codecs.tensors import INPUT_NAME, ITEM_SHAPE, OUTPUT_NAME, OUTPUT_SHAPE, wire_shape
from gateway.codecs.tf_tensor import fill_tensor_proto, from_tensor_proto
from gateway.codecs.v2_json import image_tensor
from gateway.errors import GatewayError, InvalidInput, NotFound
from gateway.router import Routed, Selection
from gateway.service import Gateway, server_version
from model_store import CONTRACT

__all__ = ["STATUS_CODES", "start_ingress"]

log = logging.getLogger(__name__)
T = TypeVar("T")
INPUT, OUTPUT = INPUT_NAME, OUTPUT_NAME
DT_FLOAT = tfserving_proto.DT_FLOAT
STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class _Metadata(dict[str, str]):
    """An RPC's metadata (lower-case keys, as gRPC sends them), looked up in any case like HTTP headers."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class _Calls:
    """Every RPC's bookkeeping (:mod:`gateway.calls`, as HTTP's), authentication, selection and the
    translation of a refusal into a gRPC status."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def run(self, context: grpc.ServicerContext, endpoint: str, model: str, work: Callable[[Call], T]) -> T:
        metadata = _Metadata((key.lower(), value) for key, value in context.invocation_metadata())
        call = start_call(self.gateway, metadata, endpoint)
        call.model = model
        left = context.time_remaining()
        if left is not None:  # the client's own deadline, when it is the shorter one
            call.deadline = min(call.deadline, time.monotonic() + left)
        status = 200
        try:
            self.gateway.authenticate(metadata.get("x-api-key"), metadata.get("authorization"))
            result = work(call)
            if isinstance(result, tuple):  # (response, routed) from a prediction
                response, routed = result
                call.routed(routed)
                return response
            return result
        except GatewayError as error:
            status = error.status
            log_refusal(error, call)
            context.abort(STATUS_CODES.get(error.status, grpc.StatusCode.INTERNAL), error.message)
        except Exception:
            status = 500
            log.exception("request %s: unhandled error in %s", call.request_id, endpoint)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {call.request_id})")
        finally:
            finish_call(call, status, endpoint)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def model(self, name: str) -> str:
        if not self.gateway.is_routed(name):
            raise NotFound(f"unknown model {name[:80]!r}")
        return name

    def predict(self, call: Call, model: str, version: int | None, images: np.ndarray) -> Routed:
        metadata = call.headers  # what run() read once
        explicit = metadata.get("x-gateway-backend") or None
        return self.gateway.predict(
            Selection(model, call.deadline, version, None, explicit, metadata), images
        )

    def ready(self, model: str) -> bool:
        return any(report.ready for report in self.gateway.model_report(model))


def _version(text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(f"model version {text[:20]!r} is not a number")
    return int(text)


class InferenceServicer(v2_grpc.GRPCInferenceServiceServicer):
    """Open Inference Protocol V2 (the calls a client needs to infer)."""

    def __init__(self, calls: _Calls) -> None:
        self.calls = calls

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:
        return v2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> Any:
            models = self.calls.gateway.readiness()
            return v2.ServerReadyResponse(ready=all(any(r.ready for r in rs) for rs in models.values()))

        return self.calls.run(context, "grpc_server_ready", "", work)

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> Any:
            model = self.calls.model(request.name)
            self.calls.gateway.check_version(model, _version(request.version))
            return v2.ModelReadyResponse(ready=self.calls.ready(model))

        return self.calls.run(context, "grpc_model_ready", request.name, work)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return v2.ServerMetadataResponse(
            name="mnist-serving-gateway", version=server_version(), extensions=[]
        )

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> Any:
            model = self.calls.model(request.name)
            self.calls.gateway.check_version(model, _version(request.version))
            route = self.calls.gateway.table().models[model]
            tensor = v2.ModelMetadataResponse.TensorMetadata
            return v2.ModelMetadataResponse(
                name=model,
                versions=[str(v) for v in sorted({*route.versions, *route.labels.values()})],
                platform="mnist-serving-gateway",
                inputs=[tensor(name=INPUT, datatype="FP32", shape=wire_shape(ITEM_SHAPE))],
                outputs=[tensor(name=OUTPUT, datatype="FP32", shape=wire_shape(OUTPUT_SHAPE))],
            )

        return self.calls.run(context, "grpc_model_metadata", request.name, work)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> tuple[Any, Routed]:
            model = self.calls.model(request.model_name)
            images = self._images(request)
            routed = self.calls.predict(call, model, _version(request.model_version), images)
            probabilities = routed.prediction.probabilities.astype("<f4")
            response = v2.ModelInferResponse(
                model_name=model,
                model_version=routed.prediction.version or request.model_version,
                id=request.id,
                outputs=[
                    v2.ModelInferResponse.InferOutputTensor(
                        name=OUTPUT, datatype="FP32", shape=list(probabilities.shape)
                    )
                ],
                raw_output_contents=[probabilities.tobytes()],
            )
            return response, routed

        return self.calls.run(context, "grpc_model_infer", request.model_name, work)

    def _images(self, request: Any) -> np.ndarray:
        if len(request.inputs) != 1:
            raise InvalidInput(f"{len(request.inputs)} inputs; the model takes one, {INPUT!r}")
        tensor = request.inputs[0]
        if tensor.name != INPUT:
            raise InvalidInput(f"unknown input {tensor.name[:40]!r}; the model takes {INPUT!r}")
        described = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        limits = self.calls.gateway.limits
        if request.raw_input_contents:
            if len(request.raw_input_contents) != 1:
                raise InvalidInput("raw_input_contents must hold exactly one entry per input")
            return image_tensor(described, request.raw_input_contents[0], limits)
        return image_tensor({**described, "data": list(tensor.contents.fp32_contents)}, None, limits)


class TFServingServicer:
    """TF Serving's ``PredictionService.Predict``/``GetModelMetadata`` and ``ModelService.GetModelStatus``,
    on the TensorFlow-free messages of :mod:`gateway.tfserving_proto`."""

    def __init__(self, calls: _Calls) -> None:
        self.calls = calls

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> tuple[Any, Routed]:
            model = self.calls.model(request.model_spec.name)
            if request.model_spec.signature_name not in ("", CONTRACT.signature_name):
                raise InvalidInput(f"unknown signature {request.model_spec.signature_name[:40]!r}")
            if set(request.inputs) != {INPUT}:
                raise InvalidInput(f"inputs {sorted(request.inputs)}; the model takes {INPUT!r}")
            images = from_tensor_proto(request.inputs[INPUT], self.calls.gateway.limits)
            version = request.model_spec.version.value if request.model_spec.HasField("version") else None
            routed = self.calls.predict(call, model, version, images)
            response = tfserving_proto.messages().PredictResponse()
            response.model_spec.name = model
            response.model_spec.signature_name = CONTRACT.signature_name
            if (served := routed.prediction.version or "").isdigit():
                response.model_spec.version.value = int(served)
            fill_tensor_proto(response.outputs[OUTPUT], routed.prediction.probabilities)
            return response, routed

        return self.calls.run(context, "grpc_predict", request.model_spec.name, work)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> Any:
            return _tf_metadata(self.calls.model(request.model_spec.name))

        return self.calls.run(context, "grpc_model_metadata", request.model_spec.name, work)

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(call: Call) -> Any:
            messages = tfserving_proto.messages()
            reports = self.calls.gateway.model_report(self.calls.model(request.model_spec.name))
            versions = sorted({v for r in reports if r.ready for v in r.versions}) or [0]
            ready = any(r.ready for r in reports)
            state = tfserving_proto.AVAILABLE if ready else tfserving_proto.UNKNOWN
            return messages.GetModelStatusResponse(
                model_version_status=[messages.ModelVersionStatus(version=v, state=state) for v in versions]
            )

        return self.calls.run(context, "grpc_model_status", request.model_spec.name, work)

    def add_to(self, server: grpc.Server) -> None:
        server.add_generic_rpc_handlers(
            (
                tfserving_proto.service_handler(
                    tfserving_proto.PREDICTION_SERVICE,
                    {
                        "Predict": (self.Predict, "PredictRequest", "PredictResponse"),
                        "GetModelMetadata": (
                            self.GetModelMetadata,
                            "GetModelMetadataRequest",
                            "GetModelMetadataResponse",
                        ),
                    },
                ),
                tfserving_proto.service_handler(
                    tfserving_proto.MODEL_SERVICE,
                    {
                        "GetModelStatus": (
                            self.GetModelStatus,
                            "GetModelStatusRequest",
                            "GetModelStatusResponse",
                        )
                    },
                ),
            )
        )


def _tf_metadata(model: str) -> Any:
    messages = tfserving_proto.messages()
    signature = messages.SignatureDef(method_name="tensorflow/serving/predict")
    for name, dims, target in (
        (INPUT, wire_shape(ITEM_SHAPE), signature.inputs),
        (OUTPUT, wire_shape(OUTPUT_SHAPE), signature.outputs),
    ):
        info = target[name]
        info.name, info.dtype = name, DT_FLOAT
        for size in dims:
            info.tensor_shape.dim.add().size = size
    signatures = messages.SignatureDefMap()
    signatures.signature_def[CONTRACT.signature_name].CopyFrom(signature)
    response = messages.GetModelMetadataResponse()
    response.model_spec.name = model
    response.metadata["signature_def"].Pack(signatures)
    return response


def start_ingress(gateway: Gateway, bind: str, threads: int) -> grpc.Server:
    """A started gRPC server on ``bind`` serving both protocols; ``server.stop(grace)`` ends it."""
    calls = _Calls(gateway)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc-ingress"),
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", gateway.settings.max_body_bytes),
        ],
    )
    v2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(calls), server)
    TFServingServicer(calls).add_to(server)
    if server.add_insecure_port(bind) == 0:  # pragma: no cover - the launcher checked the port
        raise OSError(f"gRPC ingress could not bind {bind}")
    server.start()
    log.info("gRPC ingress (Open Inference Protocol V2, TF Serving) on %s", bind)
    return server
