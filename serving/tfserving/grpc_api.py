"""TF Serving's gRPC API on the official stubs: PredictionService and ModelService.

Classify, Regress, MultiInference and HandleReloadConfigRequest keep the stubs' default answer,
UNIMPLEMENTED. Failures become gRPC status codes carrying TF Serving's messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent import futures
from typing import TypeVar

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.tfserving import service
from serving.tfserving.errors import ServingError, invalid_argument
from serving.tfserving.metrics import Metrics
from serving.tfserving.repository import ModelRepository
from serving.tfserving.servable import Array

logger = logging.getLogger(__name__)

Response = TypeVar("Response")


def _call(
    metrics: Metrics, api: str, context: grpc.ServicerContext, work: Callable[[], Response]
) -> Response:
    """Run ``work``, count it, and turn our errors into a gRPC status (abort raises)."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        return work()
    except ServingError as exc:
        code = exc.grpc_status
        context.abort(code, exc.message)
    except Exception:
        logger.exception("unexpected failure in %s", api)
        code = grpc.StatusCode.INTERNAL
        context.abort(code, "Internal error in the stand-in (see its log)")
    finally:
        metrics.observe("grpc", api, code.name, time.perf_counter() - started)
    raise AssertionError("unreachable: context.abort raises")


def _to_arrays(request: predict_pb2.PredictRequest) -> dict[str, Array]:
    arrays: dict[str, Array] = {}
    for name, proto in request.inputs.items():
        try:
            arrays[name] = tf.make_ndarray(proto)
        except (TypeError, ValueError) as exc:
            raise invalid_argument(f"input {name}: not a valid TensorProto ({exc})") from exc
    return arrays


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository, metrics: Metrics) -> None:
        self.repository = repository
        self.metrics = metrics

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        def work() -> predict_pb2.PredictResponse:
            target = service.Target.from_model_spec(request.model_spec)
            result = service.predict(
                self.repository,
                target,
                request.model_spec.signature_name,
                _to_arrays(request),
                list(request.output_filter),
            )
            response = predict_pb2.PredictResponse(model_spec=result.model_spec(target.model_name))
            for name, value in result.outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

        return _call(self.metrics, "predict", context, work)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def work() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            target = service.Target.from_model_spec(request.model_spec)
            return service.model_metadata(self.repository, target, list(request.metadata_field))

        return _call(self.metrics, "metadata", context, work)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository, metrics: Metrics) -> None:
        self.repository = repository
        self.metrics = metrics

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        def work() -> get_model_status_pb2.GetModelStatusResponse:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            return service.model_status(self.repository, service.Target.from_model_spec(request.model_spec))

        return _call(self.metrics, "status", context, work)


def make_grpc_server(
    address: str, repository: ModelRepository, metrics: Metrics, *, max_workers: int, max_message_bytes: int
) -> grpc.Server:
    """A bound, not yet started gRPC server (``server.start()``; ``server.stop(grace)`` to end)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(repository, metrics), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(repository, metrics), server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # newer grpcio raises instead of returning 0
        raise OSError(f"gRPC could not bind {address}: {exc}") from exc
    if bound == 0:
        raise OSError(f"gRPC could not bind {address}")
    return server
