"""TF Serving's gRPC messages and services without TensorFlow.

``tensorflow-serving-api``'s generated modules import TensorFlow (seconds to load and hundreds of MiB in
every process that touches them), and the gateway image leaves TensorFlow out. Protobuf's wire format
carries field numbers and types only, so the messages a client and a server of TF Serving exchange for
``Predict``, ``GetModelMetadata`` and ``GetModelStatus`` are declared here with TF Serving's own package
names, field numbers and types: the bytes are the same, and ``tensorflow-serving-api``'s stubs talk to
a server built on these (and the other way round). Fields those calls never carry are left out; protobuf
keeps unknown fields, so nothing a peer sends is lost in transit.

The declarations live in a private descriptor pool, so they never clash with the real definitions when
TensorFlow is loaded in the same process. Importing this module costs protobuf and grpc only; the pool
is built on first use.

Shared by the gateway's gRPC ingress, its ``tfserving-grpc`` backend and the load tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.protobuf import any_pb2, wrappers_pb2

from gateway import proto_pool
from gateway.proto_pool import Layout, build_pool, file_proto, message_class

__all__ = [
    "AVAILABLE",
    "DT_FLOAT",
    "MODEL_SERVICE",
    "PREDICTION_SERVICE",
    "UNKNOWN",
    "Messages",
    "messages",
    "service_handler",
    "unary_call",
]

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
DT_FLOAT = 1
"""``tensorflow.DataType.DT_FLOAT``; dtypes travel as their enum numbers."""
UNKNOWN, AVAILABLE = 0, 30
"""``tensorflow.serving.ModelVersionStatus.State`` values the gateway reports."""

# TF Serving's names and numbers (layout: gateway.proto_pool.Layout).
_TENSORFLOW: Layout = {
    "TensorShapeProto": (
        ("dim", 2, ".tensorflow.TensorShapeProto.Dim", True),
        ("unknown_rank", 3, "bool", False),
    ),
    "TensorShapeProto.Dim": (("size", 1, "int64", False), ("name", 2, "string", False)),
    "TensorProto": (
        ("dtype", 1, "enum", False),
        ("tensor_shape", 2, ".tensorflow.TensorShapeProto", False),
        ("version_number", 3, "int32", False),
        ("tensor_content", 4, "bytes", False),
        ("float_val", 5, "float", True),
        ("double_val", 6, "double", True),
        ("int_val", 7, "int32", True),
        ("string_val", 8, "bytes", True),
        ("int64_val", 10, "int64", True),
        ("bool_val", 11, "bool", True),
    ),
    "TensorInfo": (
        ("name", 1, "string", False),
        ("dtype", 2, "enum", False),
        ("tensor_shape", 3, ".tensorflow.TensorShapeProto", False),
    ),
    "SignatureDef": (
        ("inputs", 1, "map:.tensorflow.TensorInfo", True),
        ("outputs", 2, "map:.tensorflow.TensorInfo", True),
        ("method_name", 3, "string", False),
    ),
}
_SERVING: Layout = {
    "ModelSpec": (
        ("name", 1, "string", False),
        ("version", 2, ".google.protobuf.Int64Value", False),
        ("signature_name", 3, "string", False),
        ("version_label", 4, "string", False),
    ),
    "PredictRequest": (
        ("model_spec", 1, ".tensorflow.serving.ModelSpec", False),
        ("inputs", 2, "map:.tensorflow.TensorProto", True),
        ("output_filter", 3, "string", True),
    ),
    "PredictResponse": (
        ("outputs", 1, "map:.tensorflow.TensorProto", True),
        ("model_spec", 2, ".tensorflow.serving.ModelSpec", False),
    ),
    "SignatureDefMap": (("signature_def", 1, "map:.tensorflow.SignatureDef", True),),
    "GetModelMetadataRequest": (
        ("model_spec", 1, ".tensorflow.serving.ModelSpec", False),
        ("metadata_field", 2, "string", True),
    ),
    "GetModelMetadataResponse": (
        ("model_spec", 1, ".tensorflow.serving.ModelSpec", False),
        ("metadata", 2, "map:.google.protobuf.Any", True),
    ),
    "StatusProto": (("error_code", 1, "enum", False), ("error_message", 2, "string", False)),
    "ModelVersionStatus": (
        ("version", 1, "int64", False),
        ("state", 2, "enum", False),
        ("status", 3, ".tensorflow.serving.StatusProto", False),
    ),
    "GetModelStatusRequest": (("model_spec", 1, ".tensorflow.serving.ModelSpec", False),),
    "GetModelStatusResponse": (("model_version_status", 1, ".tensorflow.serving.ModelVersionStatus", True),),
}


_HIDDEN = ("StatusProto",)
"""Messages reached only through another message's field: no attribute of :class:`Messages`."""


@dataclass(frozen=True)
class Messages:
    """The message classes, by TF Serving's names."""

    TensorProto: Any
    SignatureDef: Any
    ModelSpec: Any
    PredictRequest: Any
    PredictResponse: Any
    SignatureDefMap: Any
    GetModelMetadataRequest: Any
    GetModelMetadataResponse: Any
    ModelVersionStatus: Any
    GetModelStatusRequest: Any
    GetModelStatusResponse: Any


@cache
def messages() -> Messages:
    """The message classes, built once per process in a private pool."""
    tensorflow = file_proto("tfserving_proto/tensorflow.proto", "tensorflow", _TENSORFLOW)
    serving = file_proto("tfserving_proto/serving.proto", "tensorflow.serving", _SERVING)
    serving.dependency.extend(
        ["tfserving_proto/tensorflow.proto", "google/protobuf/any.proto", "google/protobuf/wrappers.proto"]
    )
    pool = build_pool([tensorflow, serving], (any_pb2, wrappers_pb2))
    return Messages(
        TensorProto=message_class(pool, "tensorflow.TensorProto"),
        SignatureDef=message_class(pool, "tensorflow.SignatureDef"),
        **{
            name: message_class(pool, f"tensorflow.serving.{name}")
            for name in _SERVING
            if name not in _HIDDEN
        },
    )


def service_handler(service: str, methods: Mapping[str, tuple[Callable[[Any, Any], Any], str, str]]) -> Any:
    """A generic handler for ``grpc.Server.add_generic_rpc_handlers``: ``methods`` maps a method name
    to (behaviour, request message name, response message name)."""
    found = messages()
    return proto_pool.service_handler(
        service,
        {
            method: (behaviour, getattr(found, request), getattr(found, response))
            for method, (behaviour, request, response) in methods.items()
        },
    )


def unary_call(
    channel: grpc.Channel, service: str, method: str, response: str
) -> grpc.UnaryUnaryMultiCallable:
    """A client callable for ``/service/method`` answering ``response`` messages."""
    return proto_pool.unary_call(channel, service, method, getattr(messages(), response))
