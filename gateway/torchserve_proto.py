"""TorchServe's gRPC inference messages without its generated stubs.

TorchServe ships its ``inference.proto`` inside ``model-server.jar``; compiling it needs the torchserve
package and grpcio-tools, which the gateway image leaves out. The three messages the inference API
exchanges (``Predictions`` and ``Ping``) are declared here with TorchServe's package, names, numbers
and types (:mod:`gateway.proto_pool`): the bytes are the same, so the ``torchserve-grpc`` backend and
the load tests talk to a real TorchServe with them. A unit test compares them with the stubs compiled
from the installed package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.protobuf import empty_pb2

from gateway import proto_pool
from gateway.proto_pool import Layout, build_pool, file_proto, message_class

__all__ = ["INFERENCE_SERVICE", "Messages", "empty_request", "messages", "ping_call", "predictions_call"]

PACKAGE = "org.pytorch.serve.grpc.inference"
INFERENCE_SERVICE = f"{PACKAGE}.InferenceAPIsService"

_INFERENCE: Layout = {
    "PredictionsRequest": (
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("input", 3, "map:bytes", True),
        ("sequence_id", 4, "string", False),
    ),
    "PredictionResponse": (("prediction", 1, "bytes", False), ("sequence_id", 2, "string", False)),
    "TorchServeHealthResponse": (("health", 1, "string", False),),
}


@dataclass(frozen=True)
class Messages:
    PredictionsRequest: Any
    PredictionResponse: Any
    TorchServeHealthResponse: Any


@cache
def messages() -> Messages:
    """The message classes, built once per process in a private pool."""
    pool = build_pool([file_proto("torchserve_proto/inference.proto", PACKAGE, _INFERENCE)])
    return Messages(**{name: message_class(pool, f"{PACKAGE}.{name}") for name in _INFERENCE})


def predictions_call(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
    return proto_pool.unary_call(channel, INFERENCE_SERVICE, "Predictions", messages().PredictionResponse)


def ping_call(channel: grpc.Channel) -> grpc.UnaryUnaryMultiCallable:
    """``Ping`` takes ``google.protobuf.Empty``: call it with ``empty_request()``."""
    return proto_pool.unary_call(channel, INFERENCE_SERVICE, "Ping", messages().TorchServeHealthResponse)


def empty_request() -> Any:
    return empty_pb2.Empty()
